
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'monkctl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'monkctl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'monkctl' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the data directory and the infra database (idempotent)')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the effective settings and where each came from')
            [CompletionResult]::new('tenant', 'tenant', [CompletionResultType]::ParameterValue, 'Create, list, inspect and retire tenants')
            [CompletionResult]::new('fixture', 'fixture', [CompletionResultType]::ParameterValue, 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files')
            [CompletionResult]::new('template', 'template', [CompletionResultType]::ParameterValue, 'Prebuilt tenant databases that new tenants are cloned from')
            [CompletionResult]::new('extract', 'extract', [CompletionResultType]::ParameterValue, 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)')
            [CompletionResult]::new('archive', 'archive', [CompletionResultType]::ParameterValue, 'Look into and check archive files')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the data directory and every tenant file; repair what is safe with --repair')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Schema migrations of the infra database and every tenant database')
            [CompletionResult]::new('query', 'query', [CompletionResultType]::ParameterValue, 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell: `source <(monkctl completion bash)`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;init' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;config' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create tenants: a database file the API serves, then the registry row')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tenants (trashed and deleted ones only on request)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a tenant''s row, file, tables and fixtures')
            [CompletionResult]::new('trash', 'trash', [CompletionResultType]::ParameterValue, 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)')
            [CompletionResult]::new('untrash', 'untrash', [CompletionResultType]::ParameterValue, 'Take a tenant out of the trash')
            [CompletionResult]::new('suspend', 'suspend', [CompletionResultType]::ParameterValue, 'Suspend a tenant: the API refuses logins and requests at once')
            [CompletionResult]::new('activate', 'activate', [CompletionResultType]::ParameterValue, 'Make a suspended or pending tenant active')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed')
            [CompletionResult]::new('undelete', 'undelete', [CompletionResultType]::ParameterValue, 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove the trashed files of tenants deleted longer ago than a retention')
            [CompletionResult]::new('vacuum', 'vacuum', [CompletionResultType]::ParameterValue, 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for')
            [CompletionResult]::new('usage', 'usage', [CompletionResultType]::ParameterValue, 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;tenant;create' {
            [CompletionResult]::new('--owner', '--owner', [CompletionResultType]::ParameterName, 'Owner user of the new tenants (the API''s root user when not given)')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'Description stored in the registry')
            [CompletionResult]::new('--from-file', '--from-file', [CompletionResultType]::ParameterName, 'Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments')
            [CompletionResult]::new('--fixture', '--fixture', [CompletionResultType]::ParameterName, 'Deploy this fixture (and its dependencies) at creation (repeatable)')
            [CompletionResult]::new('--template', '--template', [CompletionResultType]::ParameterName, 'Clone this template instead of executing the schema (`system` is built in)')
            [CompletionResult]::new('--db-type', '--db-type', [CompletionResultType]::ParameterName, 'What the new tenants are: `sqlite` makes SQLite files even on a PostgreSQL deployment (under --sqlite-data-dir, registered with db_type ''sqlite'', which the API serves from its SQLITE_DATA_DIR) [default: the deployment''s own kind]')
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--statement-timeout', '--statement-timeout', [CompletionResultType]::ParameterName, 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--skip-existing', '--skip-existing', [CompletionResultType]::ParameterName, 'A tenant that exists already is left as it is and counts as done (exit 0), so that a provisioning script can be run again after an interruption')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only tenants with this status (repeatable)')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Sort key')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--trashed', '--trashed', [CompletionResultType]::ParameterName, 'Include trashed tenants')
            [CompletionResult]::new('--deleted', '--deleted', [CompletionResultType]::ParameterName, 'Include deleted tenants')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Include trashed and deleted tenants')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Include trashed and deleted tenants')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Reverse the order')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'Reverse the order')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;show' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;trash' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;untrash' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;suspend' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;activate' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;delete' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;undelete' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;purge' {
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Retention: purge tenants deleted longer ago than this (a number and a unit: ms, s, m, h, d, w)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would be removed, remove nothing')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;vacuum' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Vacuum every tenant that is not deleted')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;usage' {
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Sort key: name ascending; size, wal, rows, free and changed largest or newest first')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Reverse the order')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'Reverse the order')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;copy' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The target deployment''s URL: `sqlite:NAME` (with --to-data-dir) or `postgresql://...` (a password is better given in PGPASSWORD)')
            [CompletionResult]::new('--to-data-dir', '--to-data-dir', [CompletionResultType]::ParameterName, 'The target deployment''s data directory [default: this one''s]')
            [CompletionResult]::new('--as', '--as', [CompletionResultType]::ParameterName, 'The name in the target deployment [default: the same name]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;tenant;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create tenants: a database file the API serves, then the registry row')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tenants (trashed and deleted ones only on request)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a tenant''s row, file, tables and fixtures')
            [CompletionResult]::new('trash', 'trash', [CompletionResultType]::ParameterValue, 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)')
            [CompletionResult]::new('untrash', 'untrash', [CompletionResultType]::ParameterValue, 'Take a tenant out of the trash')
            [CompletionResult]::new('suspend', 'suspend', [CompletionResultType]::ParameterValue, 'Suspend a tenant: the API refuses logins and requests at once')
            [CompletionResult]::new('activate', 'activate', [CompletionResultType]::ParameterValue, 'Make a suspended or pending tenant active')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed')
            [CompletionResult]::new('undelete', 'undelete', [CompletionResultType]::ParameterValue, 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove the trashed files of tenants deleted longer ago than a retention')
            [CompletionResult]::new('vacuum', 'vacuum', [CompletionResultType]::ParameterValue, 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for')
            [CompletionResult]::new('usage', 'usage', [CompletionResultType]::ParameterValue, 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;tenant;help;create' {
            break
        }
        'monkctl;tenant;help;list' {
            break
        }
        'monkctl;tenant;help;show' {
            break
        }
        'monkctl;tenant;help;trash' {
            break
        }
        'monkctl;tenant;help;untrash' {
            break
        }
        'monkctl;tenant;help;suspend' {
            break
        }
        'monkctl;tenant;help;activate' {
            break
        }
        'monkctl;tenant;help;delete' {
            break
        }
        'monkctl;tenant;help;undelete' {
            break
        }
        'monkctl;tenant;help;purge' {
            break
        }
        'monkctl;tenant;help;vacuum' {
            break
        }
        'monkctl;tenant;help;usage' {
            break
        }
        'monkctl;tenant;help;copy' {
            break
        }
        'monkctl;tenant;help;help' {
            break
        }
        'monkctl;fixture' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and directory fixtures with version, dependencies and source')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a fixture''s manifest, files and the tables they touch')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check fixtures against a scratch tenant in memory; creates no file anywhere')
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what a tenant has deployed, when, and at which version')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;fixture;list' {
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;fixture;show' {
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;fixture;check' {
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;fixture;deploy' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenants to deploy to (repeatable, or comma-separated: --tenant a,b)')
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--statement-timeout', '--statement-timeout', [CompletionResultType]::ParameterName, 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Every active tenant that is neither trashed nor deleted')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Deploy the named fixtures again even where they are recorded as deployed')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;fixture;status' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenant name')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;fixture;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and directory fixtures with version, dependencies and source')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a fixture''s manifest, files and the tables they touch')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check fixtures against a scratch tenant in memory; creates no file anywhere')
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what a tenant has deployed, when, and at which version')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;fixture;help;list' {
            break
        }
        'monkctl;fixture;help;show' {
            break
        }
        'monkctl;fixture;help;check' {
            break
        }
        'monkctl;fixture;help;deploy' {
            break
        }
        'monkctl;fixture;help;status' {
            break
        }
        'monkctl;fixture;help;help' {
            break
        }
        'monkctl;template' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List templates with what they hold')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a template''s metadata and verify its checksum')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Remove a template (tenants cloned from it are not affected)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;template;build' {
            [CompletionResult]::new('--fixture', '--fixture', [CompletionResultType]::ParameterName, 'Fixture to include, with its dependencies (repeatable)')
            [CompletionResult]::new('--fixtures', '--fixtures', [CompletionResultType]::ParameterName, 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]')
            [CompletionResult]::new('--statement-timeout', '--statement-timeout', [CompletionResultType]::ParameterName, 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;template;list' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;template;show' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;template;rm' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;template;help' {
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List templates with what they hold')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a template''s metadata and verify its checksum')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Remove a template (tenants cloned from it are not affected)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;template;help;build' {
            break
        }
        'monkctl;template;help;list' {
            break
        }
        'monkctl;template;help;show' {
            break
        }
        'monkctl;template;help;rm' {
            break
        }
        'monkctl;template;help;help' {
            break
        }
        'monkctl;extract' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output file (one tenant) or directory (one that exists, a path ending in `/`, or for several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output file (one tenant) or directory (one that exists, a path ending in `/`, or for several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenants extracted at once, at least 1 [default: one per core, at most 4]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenants extracted at once, at least 1 [default: one per core, at most 4]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Extract every tenant that is not deleted, and a copy of the infra registry (needs -o DIR)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite an existing output file')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;archive' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an archive''s metadata, tables and row counts, without changing it')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an archive: SQLite integrity, metadata, row counts and content checksum')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the archives (*.monk.db) in a directory: tenant, time, size, versions')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;archive;inspect' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;archive;verify' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;archive;list' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'Verify each archive fully, as `archive verify` does (reads every page)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;archive;help' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an archive''s metadata, tables and row counts, without changing it')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an archive: SQLite integrity, metadata, row counts and content checksum')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the archives (*.monk.db) in a directory: tenant, time, size, versions')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;archive;help;inspect' {
            break
        }
        'monkctl;archive;help;verify' {
            break
        }
        'monkctl;archive;help;list' {
            break
        }
        'monkctl;archive;help;help' {
            break
        }
        'monkctl;restore' {
            [CompletionResult]::new('--as', '--as', [CompletionResultType]::ParameterName, 'Restore under this name (a new tenant id) instead of the archived tenant''s name')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace the content of an existing tenant (its current database is saved to the trash first; writes to it wait until the new content is in place)')
            [CompletionResult]::new('--migrate', '--migrate', [CompletionResultType]::ParameterName, 'Bring an older schema up to date after restoring (`migrate up` for this tenant; destructive migrations are left to `migrate up --allow-destructive`)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;doctor' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Check only these tenants (repeatable, or comma-separated: --tenant a,b); data-directory checks are skipped')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenant files checked at once, at least 1 [default: one per core, at most 4]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenant files checked at once, at least 1 [default: one per core, at most 4]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--full', '--full', [CompletionResultType]::ParameterName, 'Run integrity_check and foreign_key_check instead of quick_check (slower)')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Repair what is safe (temp leftovers, stale locks, orphans to <data>/orphans/, WAL checkpoints, permissions, unrecorded fixtures), list each action, then check again')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Applied version, pending, diverged and missing migrations of each database')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'What `up` would run where, flagging destructive statements; writes nothing')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Migrate the infra database, then the tenants in parallel, each in one transaction')
            [CompletionResult]::new('undo', 'undo', [CompletionResultType]::ParameterValue, 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again')
            [CompletionResult]::new('snapshots', 'snapshots', [CompletionResultType]::ParameterValue, 'List and prune the snapshots taken before destructive migrations')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;migrate;status' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only these tenants (repeatable, or comma-separated)')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Stop at this version instead of the latest')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--busy-timeout', '--busy-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--include-trashed', '--include-trashed', [CompletionResultType]::ParameterName, 'Include trashed tenants (deleted tenants are never migrated)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;plan' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only these tenants (repeatable, or comma-separated)')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Stop at this version instead of the latest')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--busy-timeout', '--busy-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--include-trashed', '--include-trashed', [CompletionResultType]::ParameterName, 'Include trashed tenants (deleted tenants are never migrated)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;up' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Only these tenants (repeatable, or comma-separated)')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Stop at this version instead of the latest')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenants handled at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--busy-timeout', '--busy-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)')
            [CompletionResult]::new('--statement-timeout', '--statement-timeout', [CompletionResultType]::ParameterName, 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--include-trashed', '--include-trashed', [CompletionResultType]::ParameterName, 'Include trashed tenants (deleted tenants are never migrated)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the plan instead of migrating (same as `migrate plan`)')
            [CompletionResult]::new('--fail-fast', '--fail-fast', [CompletionResultType]::ParameterName, 'Start no new tenant after the first failure')
            [CompletionResult]::new('--allow-destructive', '--allow-destructive', [CompletionResultType]::ParameterName, 'Allow migrations that drop or rewrite data; each such tenant is snapshotted first')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;undo' {
            [CompletionResult]::new('--busy-timeout', '--busy-timeout', [CompletionResultType]::ParameterName, 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;snapshots' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Runs that took snapshots, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old runs'' snapshots')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;migrate;snapshots;list' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;snapshots;prune' {
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Keep the newest N runs')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Remove runs older than this (a number and a unit: ms, s, m, h, d, w)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;migrate;snapshots;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Runs that took snapshots, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old runs'' snapshots')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;migrate;snapshots;help;list' {
            break
        }
        'monkctl;migrate;snapshots;help;prune' {
            break
        }
        'monkctl;migrate;snapshots;help;help' {
            break
        }
        'monkctl;migrate;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Applied version, pending, diverged and missing migrations of each database')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'What `up` would run where, flagging destructive statements; writes nothing')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Migrate the infra database, then the tenants in parallel, each in one transaction')
            [CompletionResult]::new('undo', 'undo', [CompletionResultType]::ParameterValue, 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again')
            [CompletionResult]::new('snapshots', 'snapshots', [CompletionResultType]::ParameterValue, 'List and prune the snapshots taken before destructive migrations')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;migrate;help;status' {
            break
        }
        'monkctl;migrate;help;plan' {
            break
        }
        'monkctl;migrate;help;up' {
            break
        }
        'monkctl;migrate;help;undo' {
            break
        }
        'monkctl;migrate;help;snapshots' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Runs that took snapshots, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old runs'' snapshots')
            break
        }
        'monkctl;migrate;help;snapshots;list' {
            break
        }
        'monkctl;migrate;help;snapshots;prune' {
            break
        }
        'monkctl;migrate;help;help' {
            break
        }
        'monkctl;query' {
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Read the statement from this file (UTF-8, one statement)')
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Tenants to query (repeatable, or comma-separated)')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only tenants with this status (active, suspended, pending...); alone, every such tenant')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tenants queried at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Tenants queried at once, at least 1 [default: four per core, at most 64]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Stop the statement in a tenant that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); that tenant fails with exit 20')
            [CompletionResult]::new('--param', '--param', [CompletionResultType]::ParameterName, 'A value for the next `?` placeholder, bound as text (repeatable, in order)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Query every tenant that is not deleted (trashed ones included)')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'One row per tenant instead of the rows: tenant, rows, ms, error, exit_code')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;completion' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]')
            [CompletionResult]::new('--migrations', '--migrations', [CompletionResultType]::ParameterName, 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]')
            [CompletionResult]::new('--sqlite-data-dir', '--sqlite-data-dir', [CompletionResultType]::ParameterName, 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]')
            [CompletionResult]::new('--layout', '--layout', [CompletionResultType]::ParameterName, 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: table for people, json and csv for scripts')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it')
            [CompletionResult]::new('--wide', '--wide', [CompletionResultType]::ParameterName, 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'monkctl;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the data directory and the infra database (idempotent)')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the effective settings and where each came from')
            [CompletionResult]::new('tenant', 'tenant', [CompletionResultType]::ParameterValue, 'Create, list, inspect and retire tenants')
            [CompletionResult]::new('fixture', 'fixture', [CompletionResultType]::ParameterValue, 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files')
            [CompletionResult]::new('template', 'template', [CompletionResultType]::ParameterValue, 'Prebuilt tenant databases that new tenants are cloned from')
            [CompletionResult]::new('extract', 'extract', [CompletionResultType]::ParameterValue, 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)')
            [CompletionResult]::new('archive', 'archive', [CompletionResultType]::ParameterValue, 'Look into and check archive files')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the data directory and every tenant file; repair what is safe with --repair')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Schema migrations of the infra database and every tenant database')
            [CompletionResult]::new('query', 'query', [CompletionResultType]::ParameterValue, 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print the completion script for a shell: `source <(monkctl completion bash)`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'monkctl;help;init' {
            break
        }
        'monkctl;help;config' {
            break
        }
        'monkctl;help;tenant' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create tenants: a database file the API serves, then the registry row')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tenants (trashed and deleted ones only on request)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a tenant''s row, file, tables and fixtures')
            [CompletionResult]::new('trash', 'trash', [CompletionResultType]::ParameterValue, 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)')
            [CompletionResult]::new('untrash', 'untrash', [CompletionResultType]::ParameterValue, 'Take a tenant out of the trash')
            [CompletionResult]::new('suspend', 'suspend', [CompletionResultType]::ParameterValue, 'Suspend a tenant: the API refuses logins and requests at once')
            [CompletionResult]::new('activate', 'activate', [CompletionResultType]::ParameterValue, 'Make a suspended or pending tenant active')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed')
            [CompletionResult]::new('undelete', 'undelete', [CompletionResultType]::ParameterValue, 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove the trashed files of tenants deleted longer ago than a retention')
            [CompletionResult]::new('vacuum', 'vacuum', [CompletionResultType]::ParameterValue, 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for')
            [CompletionResult]::new('usage', 'usage', [CompletionResultType]::ParameterValue, 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was')
            break
        }
        'monkctl;help;tenant;create' {
            break
        }
        'monkctl;help;tenant;list' {
            break
        }
        'monkctl;help;tenant;show' {
            break
        }
        'monkctl;help;tenant;trash' {
            break
        }
        'monkctl;help;tenant;untrash' {
            break
        }
        'monkctl;help;tenant;suspend' {
            break
        }
        'monkctl;help;tenant;activate' {
            break
        }
        'monkctl;help;tenant;delete' {
            break
        }
        'monkctl;help;tenant;undelete' {
            break
        }
        'monkctl;help;tenant;purge' {
            break
        }
        'monkctl;help;tenant;vacuum' {
            break
        }
        'monkctl;help;tenant;usage' {
            break
        }
        'monkctl;help;tenant;copy' {
            break
        }
        'monkctl;help;fixture' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and directory fixtures with version, dependencies and source')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a fixture''s manifest, files and the tables they touch')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check fixtures against a scratch tenant in memory; creates no file anywhere')
            [CompletionResult]::new('deploy', 'deploy', [CompletionResultType]::ParameterValue, 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what a tenant has deployed, when, and at which version')
            break
        }
        'monkctl;help;fixture;list' {
            break
        }
        'monkctl;help;fixture;show' {
            break
        }
        'monkctl;help;fixture;check' {
            break
        }
        'monkctl;help;fixture;deploy' {
            break
        }
        'monkctl;help;fixture;status' {
            break
        }
        'monkctl;help;template' {
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List templates with what they hold')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a template''s metadata and verify its checksum')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Remove a template (tenants cloned from it are not affected)')
            break
        }
        'monkctl;help;template;build' {
            break
        }
        'monkctl;help;template;list' {
            break
        }
        'monkctl;help;template;show' {
            break
        }
        'monkctl;help;template;rm' {
            break
        }
        'monkctl;help;extract' {
            break
        }
        'monkctl;help;archive' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an archive''s metadata, tables and row counts, without changing it')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an archive: SQLite integrity, metadata, row counts and content checksum')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the archives (*.monk.db) in a directory: tenant, time, size, versions')
            break
        }
        'monkctl;help;archive;inspect' {
            break
        }
        'monkctl;help;archive;verify' {
            break
        }
        'monkctl;help;archive;list' {
            break
        }
        'monkctl;help;restore' {
            break
        }
        'monkctl;help;doctor' {
            break
        }
        'monkctl;help;migrate' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Applied version, pending, diverged and missing migrations of each database')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'What `up` would run where, flagging destructive statements; writes nothing')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Migrate the infra database, then the tenants in parallel, each in one transaction')
            [CompletionResult]::new('undo', 'undo', [CompletionResultType]::ParameterValue, 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again')
            [CompletionResult]::new('snapshots', 'snapshots', [CompletionResultType]::ParameterValue, 'List and prune the snapshots taken before destructive migrations')
            break
        }
        'monkctl;help;migrate;status' {
            break
        }
        'monkctl;help;migrate;plan' {
            break
        }
        'monkctl;help;migrate;up' {
            break
        }
        'monkctl;help;migrate;undo' {
            break
        }
        'monkctl;help;migrate;snapshots' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Runs that took snapshots, newest first')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove old runs'' snapshots')
            break
        }
        'monkctl;help;migrate;snapshots;list' {
            break
        }
        'monkctl;help;migrate;snapshots;prune' {
            break
        }
        'monkctl;help;query' {
            break
        }
        'monkctl;help;completion' {
            break
        }
        'monkctl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
