
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
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Create the data directory and the infra database (idempotent)'
            cand config 'Show the effective settings and where each came from'
            cand tenant 'Create, list, inspect and retire tenants'
            cand doctor 'Check the data directory and every tenant file; repair what is safe with --repair'
            cand generate-docs 'Write shell completions and man pages generated from this definition'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;init'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;config'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
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
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;tenant;create'= {
            cand --owner 'Owner user of the new tenants (the API''s root user when not given)'
            cand --description 'Description stored in the registry'
            cand --from-file 'Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;list'= {
            cand --status 'Only tenants with this status (repeatable)'
            cand --sort 'Sort key'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --trashed 'Include trashed tenants'
            cand --deleted 'Include deleted tenants'
            cand -a 'Include trashed and deleted tenants'
            cand --all 'Include trashed and deleted tenants'
            cand -r 'Reverse the order'
            cand --reverse 'Reverse the order'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;show'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;trash'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;untrash'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;suspend'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;activate'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;delete'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation (required without a terminal)'
            cand --yes 'Do not ask for confirmation (required without a terminal)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;purge'= {
            cand --older-than 'Retention: purge tenants deleted longer ago than this (s, m, h, d, w)'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --dry-run 'Show what would be removed, remove nothing'
            cand -y 'Do not ask for confirmation (required without a terminal)'
            cand --yes 'Do not ask for confirmation (required without a terminal)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;vacuum'= {
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --all 'Vacuum every tenant that is not deleted'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;usage'= {
            cand --sort 'Sort key: name ascending; size, wal, rows, free and changed largest or newest first'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -a 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)'
            cand --all 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)'
            cand -r 'Reverse the order'
            cand --reverse 'Reverse the order'
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
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
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
        &'monkctl;tenant;help;purge'= {
        }
        &'monkctl;tenant;help;vacuum'= {
        }
        &'monkctl;tenant;help;usage'= {
        }
        &'monkctl;tenant;help;help'= {
        }
        &'monkctl;doctor'= {
            cand --tenant 'Check only this tenant (repeatable); data-directory checks are skipped'
            cand -j 'Tenant files checked in parallel [default: number of cores]'
            cand --jobs 'Tenant files checked in parallel [default: number of cores]'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --full 'Run integrity_check and foreign_key_check instead of quick_check (slower)'
            cand --repair 'Repair what is safe (temp leftovers, stale locks, orphans to <data>/orphans/, WAL checkpoints, permissions, unrecorded fixtures), list each action, then check again'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;generate-docs'= {
            cand --out 'Directory that receives completions/ and man/'
            cand --data-dir 'Data directory holding the infra database and tenant files [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'Infra database as the API reads it: sqlite:NAME [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;help'= {
            cand init 'Create the data directory and the infra database (idempotent)'
            cand config 'Show the effective settings and where each came from'
            cand tenant 'Create, list, inspect and retire tenants'
            cand doctor 'Check the data directory and every tenant file; repair what is safe with --repair'
            cand generate-docs 'Write shell completions and man pages generated from this definition'
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
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
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
        &'monkctl;help;tenant;purge'= {
        }
        &'monkctl;help;tenant;vacuum'= {
        }
        &'monkctl;help;tenant;usage'= {
        }
        &'monkctl;help;doctor'= {
        }
        &'monkctl;help;generate-docs'= {
        }
        &'monkctl;help;help'= {
        }
    ]
    $completions[$command]
}
