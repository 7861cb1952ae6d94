# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_monkctl_global_optspecs
    string join \n data-dir= database-url= config= migrations= layout= y/yes format= h/help V/version
end

function __fish_monkctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_monkctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_monkctl_using_subcommand
    set -l cmd (__fish_monkctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c monkctl -n "__fish_monkctl_needs_command" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_needs_command" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_needs_command" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_needs_command" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_needs_command" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_needs_command" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_needs_command" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_needs_command" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_needs_command" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "init" -d 'Create the data directory and the infra database (idempotent)'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "config" -d 'Show the effective settings and where each came from'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "tenant" -d 'Create, list, inspect and retire tenants'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "fixture" -d 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "template" -d 'Prebuilt tenant databases that new tenants are cloned from'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "extract" -d 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "archive" -d 'Look into and check archive files'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "restore" -d 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "doctor" -d 'Check the data directory and every tenant file; repair what is safe with --repair'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "migrate" -d 'Schema migrations of the infra database and every tenant database'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "query" -d 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "completion" -d 'Print the completion script for a shell: `source <(monkctl completion bash)`'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "undelete" -d 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "vacuum" -d 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "usage" -d 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "copy" -d 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete undelete purge vacuum usage copy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l owner -d 'Owner user of the new tenants (the API\'s root user when not given)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l description -d 'Description stored in the registry' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l from-file -d 'Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l fixture -d 'Deploy this fixture (and its dependencies) at creation (repeatable)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l template -d 'Clone this template instead of executing the schema (`system` is built in)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l statement-timeout -d 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l skip-existing -d 'A tenant that exists already is left as it is and counts as done (exit 0), so that a provisioning script can be run again after an interruption'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l status -d 'Only tenants with this status (repeatable)' -r -f -a "pending\t''
active\t''
suspended\t''
dissolving\t''
deleted\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l sort -d 'Sort key' -r -f -a "name\t''
created\t''
status\t''
size\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l trashed -d 'Include trashed tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l deleted -d 'Include deleted tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s a -l all -d 'Include trashed and deleted tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s r -l reverse -d 'Reverse the order'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from undelete" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l older-than -d 'Retention: purge tenants deleted longer ago than this (a number and a unit: ms, s, m, h, d, w)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l dry-run -d 'Show what would be removed, remove nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -l all -d 'Vacuum every tenant that is not deleted'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from vacuum" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l sort -d 'Sort key: name ascending; size, wal, rows, free and changed largest or newest first' -r -f -a "name\t''
size\t''
wal\t''
rows\t''
free\t''
changed\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -s a -l all -d 'Include trashed and deleted tenants (a deleted tenant\'s file is read in the trash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -s r -l reverse -d 'Reverse the order'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from usage" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l to -d 'The target deployment\'s URL: `sqlite:NAME` (with --to-data-dir) or `postgresql://...` (a password is better given in PGPASSWORD)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l to-data-dir -d 'The target deployment\'s data directory [default: this one\'s]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l as -d 'The name in the target deployment [default: the same name]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from copy" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "undelete" -d 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "vacuum" -d 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "usage" -d 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "copy" -d 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "list" -d 'List the built-in and directory fixtures with version, dependencies and source'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "show" -d 'Show a fixture\'s manifest, files and the tables they touch'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "check" -d 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "deploy" -d 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "status" -d 'Show what a tenant has deployed, when, and at which version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and not __fish_seen_subcommand_from list show check deploy status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l tenant -d 'Tenant to deploy to (repeatable)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l statement-timeout -d 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l all -d 'Every active tenant that is neither trashed nor deleted'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -l force -d 'Deploy the named fixtures again even where they are recorded as deployed'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from deploy" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l tenant -d 'Tenant name' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the built-in and directory fixtures with version, dependencies and source'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a fixture\'s manifest, files and the tables they touch'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "deploy" -d 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show what a tenant has deployed, when, and at which version'
complete -c monkctl -n "__fish_monkctl_using_subcommand fixture; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -f -a "build" -d 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -f -a "list" -d 'List templates with what they hold'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -f -a "show" -d 'Show a template\'s metadata and verify its checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -f -a "rm" -d 'Remove a template (tenants cloned from it are not affected)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and not __fish_seen_subcommand_from build list show rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l fixture -d 'Fixture to include, with its dependencies (repeatable)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l fixtures -d 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l statement-timeout -d 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from build" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from rm" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from help" -f -a "list" -d 'List templates with what they hold'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a template\'s metadata and verify its checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove a template (tenants cloned from it are not affected)'
complete -c monkctl -n "__fish_monkctl_using_subcommand template; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -s o -l output -d 'Output file (one tenant) or directory (one that exists, a path ending in `/`, or for several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -s j -l jobs -d 'Tenants extracted at once [default: the number of CPUs, at most 4]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l all -d 'Extract every tenant that is not deleted, and a copy of the infra registry (needs -o DIR)'
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -l force -d 'Overwrite an existing output file'
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand extract" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -f -a "inspect" -d 'Show an archive\'s metadata, tables and row counts, without changing it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -f -a "verify" -d 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -f -a "list" -d 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and not __fish_seen_subcommand_from inspect verify list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -l verify -d 'Verify each archive fully, as `archive verify` does (reads every page)'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show an archive\'s metadata, tables and row counts, without changing it'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
complete -c monkctl -n "__fish_monkctl_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l as -d 'Restore under this name (a new tenant id) instead of the archived tenant\'s name' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l force -d 'Replace the content of an existing tenant (its current database is saved to the trash first; writes to it wait until the new content is in place)'
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -l migrate -d 'Bring an older schema up to date after restoring (`migrate up` for this tenant; destructive migrations are left to `migrate up --allow-destructive`)'
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand restore" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l tenant -d 'Check only this tenant (repeatable); data-directory checks are skipped' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -s j -l jobs -d 'Tenant files checked in parallel [default: number of cores]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l full -d 'Run integrity_check and foreign_key_check instead of quick_check (slower)'
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -l repair -d 'Repair what is safe (temp leftovers, stale locks, orphans to <data>/orphans/, WAL checkpoints, permissions, unrecorded fixtures), list each action, then check again'
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l busy-timeout -d 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l busy-timeout -d 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l busy-timeout -d 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l statement-timeout -d 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l dry-run -d 'Show the plan instead of migrating (same as `migrate plan`)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l fail-fast -d 'Start no new tenant after the first failure'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l allow-destructive -d 'Allow migrations that drop or rewrite data; each such tenant is snapshotted first'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l busy-timeout -d 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "list" -d 'Runs that took snapshots, newest first'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "prune" -d 'Remove old runs\' snapshots'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l file -d 'Read the statement from this file (UTF-8, one statement)' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l tenant -d 'Tenants to query (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l status -d 'Only tenants with this status (active, suspended, pending...); alone, every such tenant' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l jobs -d 'Tenants queried at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l timeout -d 'Stop the statement in a tenant that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); that tenant fails with exit 20' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l param -d 'A value for the next `?` placeholder, bound as text (repeatable, in order)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l all -d 'Query every tenant that is not deleted (trashed ones included)'
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -l summary -d 'One row per tenant instead of the rows: tenant, rows, ms, error, exit_code'
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand query" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l data-dir -d 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl\'s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l database-url -d 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l migrations -d 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant\'s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l layout -d 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]' -r -f -a "design\t''
api\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -s y -l yes -d 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "init" -d 'Create the data directory and the infra database (idempotent)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "config" -d 'Show the effective settings and where each came from'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "tenant" -d 'Create, list, inspect and retire tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "fixture" -d 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "template" -d 'Prebuilt tenant databases that new tenants are cloned from'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "extract" -d 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "archive" -d 'Look into and check archive files'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "restore" -d 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "doctor" -d 'Check the data directory and every tenant file; repair what is safe with --repair'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "migrate" -d 'Schema migrations of the infra database and every tenant database'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "query" -d 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "completion" -d 'Print the completion script for a shell: `source <(monkctl completion bash)`'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant fixture template extract archive restore doctor migrate query completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "undelete" -d 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "vacuum" -d 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "usage" -d 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "copy" -d 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from fixture" -f -a "list" -d 'List the built-in and directory fixtures with version, dependencies and source'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from fixture" -f -a "show" -d 'Show a fixture\'s manifest, files and the tables they touch'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from fixture" -f -a "check" -d 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from fixture" -f -a "deploy" -d 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from fixture" -f -a "status" -d 'Show what a tenant has deployed, when, and at which version'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from template" -f -a "build" -d 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from template" -f -a "list" -d 'List templates with what they hold'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from template" -f -a "show" -d 'Show a template\'s metadata and verify its checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from template" -f -a "rm" -d 'Remove a template (tenants cloned from it are not affected)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from archive" -f -a "inspect" -d 'Show an archive\'s metadata, tables and row counts, without changing it'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from archive" -f -a "verify" -d 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from archive" -f -a "list" -d 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
