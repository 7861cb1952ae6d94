# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_monkctl_global_optspecs
    string join \n data-dir= database-url= config= format= h/help V/version
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

complete -c monkctl -n "__fish_monkctl_needs_command" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_needs_command" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_needs_command" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_needs_command" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_needs_command" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_needs_command" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "init" -d 'Create the data directory and the infra database (idempotent)'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "config" -d 'Show the effective settings and where each came from'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "tenant" -d 'Create, list, inspect and retire tenants'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "migrate" -d 'Schema migrations of the infra database and every tenant database'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "generate-docs" -d 'Write shell completions and man pages generated from this definition'
complete -c monkctl -n "__fish_monkctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand init" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand config" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and not __fish_seen_subcommand_from create list show trash untrash suspend activate delete purge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l owner -d 'Owner user of the new tenants (the API\'s root user when not given)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l description -d 'Description stored in the registry' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l from-file -d 'Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from create" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
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
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l trashed -d 'Include trashed tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -l deleted -d 'Include deleted tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s a -l all -d 'Include trashed and deleted tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s r -l reverse -d 'Reverse the order'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from trash" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from untrash" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from suspend" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from activate" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation (required without a terminal)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l older-than -d 'Retention: purge tenants deleted longer ago than this (s, m, h, d, w)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -l dry-run -d 'Show what would be removed, remove nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s y -l yes -d 'Do not ask for confirmation (required without a terminal)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand tenant; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and not __fish_seen_subcommand_from status plan up undo snapshots help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l busy-timeout -d 'How long to wait for a database another process is writing (s, m)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l busy-timeout -d 'How long to wait for a database another process is writing (s, m)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l tenant -d 'Only these tenants (repeatable, or comma-separated)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l target -d 'Stop at this version instead of the latest' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l jobs -d 'Tenants handled at once [default: four per core, at most 64]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l busy-timeout -d 'How long to wait for a database another process is writing (s, m)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l include-trashed -d 'Include trashed tenants (deleted tenants are never migrated)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l dry-run -d 'Show the plan instead of migrating (same as `migrate plan`)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l fail-fast -d 'Start no new tenant after the first failure'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -l allow-destructive -d 'Allow migrations that drop or rewrite data; each such tenant is snapshotted first'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s y -l yes -d 'Do not ask for confirmation of destructive migrations (required without a terminal)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l busy-timeout -d 'How long to wait for a database another process is writing (s, m)' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s y -l yes -d 'Do not ask for confirmation (required without a terminal)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from undo" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l migrations -d 'Directory of operator migrations, V<version>__<name>.sql, added to the built-in ones [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "list" -d 'Runs that took snapshots, newest first'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "prune" -d 'Remove old runs\' snapshots'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from snapshots" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped)'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
complete -c monkctl -n "__fish_monkctl_using_subcommand migrate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -l out -d 'Directory that receives completions/ and man/' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -l data-dir -d 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -l database-url -d 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]' -r
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -l config -d 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]' -r -F
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -l format -d 'Output format: table for people, json and csv for scripts' -r -f -a "table\t''
json\t''
csv\t''"
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c monkctl -n "__fish_monkctl_using_subcommand generate-docs" -s V -l version -d 'Print version'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "init" -d 'Create the data directory and the infra database (idempotent)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "config" -d 'Show the effective settings and where each came from'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "tenant" -d 'Create, list, inspect and retire tenants'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "migrate" -d 'Schema migrations of the infra database and every tenant database'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "generate-docs" -d 'Write shell completions and man pages generated from this definition'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and not __fish_seen_subcommand_from init config tenant migrate generate-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "create" -d 'Create tenants: a database file the API serves, then the registry row'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "list" -d 'List tenants (trashed and deleted ones only on request)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "show" -d 'Show a tenant\'s row, file, tables and fixtures'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "trash" -d 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "untrash" -d 'Take a tenant out of the trash'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "suspend" -d 'Suspend a tenant: the API refuses logins and requests at once'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "activate" -d 'Make a suspended or pending tenant active'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "delete" -d 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from tenant" -f -a "purge" -d 'Remove the trashed files of tenants deleted longer ago than a retention'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "status" -d 'Applied version, pending, diverged and missing migrations of each database'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "plan" -d 'What `up` would run where, flagging destructive statements; writes nothing'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "up" -d 'Migrate the infra database, then the tenants in parallel, each in one transaction'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "undo" -d 'Restore the snapshots of the last run that took any (tenants changed since are skipped)'
complete -c monkctl -n "__fish_monkctl_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "snapshots" -d 'List and prune the snapshots taken before destructive migrations'
