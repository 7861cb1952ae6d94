//! Creating tenants: specs (one or a `--from-file` list), recipes and builders, and the run that
//! creates them (SQLite files, or PostgreSQL schemas).

use super::*;

/// What to create: one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub owner: String,
    pub description: Option<String>,
}

/// What a builder made in a private temporary file, for the registry row.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub owner_id: String,
    pub source_template: Option<String>,
    pub template_version: Option<i64>,
    /// Fixtures the new database holds, recorded in `tenant_fixtures` with the row.
    pub fixtures: Vec<String>,
    /// The registry id to use (a restore keeps the archived id); a fresh one when `None`.
    pub id: Option<String>,
    /// Versions of the fixtures in `fixtures` (name, version), recorded with them.
    pub fixture_versions: Vec<(String, String)>,
    /// The status to register (a restore keeps `suspended`); `active` when `None`.
    pub status: Option<String>,
    /// The creation time to register (a restore keeps the original); now when `None`.
    pub created_at: Option<String>,
}

/// Builds a complete tenant database at a new private path.
pub type Builder<'a> = dyn Fn(&Path, &CreateSpec) -> Result<Built> + Sync + 'a;

/// What a new tenant is made of.
#[derive(Clone, Copy)]
pub enum Recipe<'a> {
    /// A plain tenant: the `system` fixture and the deployment's later migrations (both backends).
    System(&'a MigrationSet),
    /// A plain tenant, then these fixtures (`tenant create --fixture`), each statement bounded
    /// by `limit`.
    Fixtures {
        set: &'a MigrationSet,
        fixtures: &'a [fixture::Loaded],
        limit: Duration,
    },
    /// A clone of a template, then these fixtures (`tenant create --template`): on SQLite the
    /// template's database, on PostgreSQL its frozen fixtures replayed.
    Template {
        image: &'a crate::core::template::Image,
        fixtures: &'a [fixture::Loaded],
        limit: Duration,
    },
    /// A tenant database built by this builder (a restore); SQLite only.
    Built(&'a Builder<'a>),
}

/// Tenants created in one PostgreSQL transaction: each costs a few milliseconds of DDL, so a
/// batch commits about a second of work at once and holds `tenants` only for its last moments.
pub const PG_BATCH_SIZE: usize = 64;

/// The builder of a plain tenant: the `system` fixture and the deployment's later migrations
/// executed into a new file; the tenant records its `system` fixture.
pub fn system_builder(
    set: &MigrationSet,
) -> impl Fn(&Path, &CreateSpec) -> Result<Built> + Sync + '_ {
    move |path: &Path, spec: &CreateSpec| {
        Ok(Built::with_system(system::build(path, &spec.owner, set)?))
    }
}

impl Built {
    /// What a tenant built from the `system` fixture holds, before any other fixture.
    pub fn with_system(owner_id: String) -> Built {
        Built {
            owner_id,
            fixtures: vec![fixture::SYSTEM.to_string()],
            fixture_versions: vec![(fixture::SYSTEM.to_string(), fixture::system_version())],
            ..Built::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The tenant's database file; `null` on PostgreSQL (the tenant is `schema`).
    pub path: Option<PathBuf>,
    /// Files of an interrupted earlier attempt that stood at this tenant's path, moved aside.
    pub moved_aside: Vec<PathBuf>,
    /// True when the tenant existed already and `--skip-existing` left it as it was.
    pub existed: bool,
}

/// Parses a `--from-file` list: one tenant a line, `NAME [OWNER [DESCRIPTION...]]`, blank lines
/// and `#` comments ignored. Every line is checked before anything is created.
pub fn parse_create_file(path: &Path) -> Result<Vec<CreateSpec>> {
    // `-`: standard input, as a provisioning pipeline hands it over.
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b).at(path)?;
        b
    } else {
        fs::read(path).at(path)?
    };
    let text = String::from_utf8(bytes).map_err(|e| Error::BadInput {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        message: "the file is not valid UTF-8".into(),
    })?;
    let mut specs: Vec<CreateSpec> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| Error::BadInput {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        // Fields are separated by any run of blanks, so aligned columns work; the description is
        // the rest of the line as written.
        let (name, rest) = split_field(line);
        let (owner, rest) = split_field(rest);
        let name = name.to_string();
        let owner = if owner.is_empty() { "root" } else { owner }.to_string();
        let description = Some(rest.trim())
            .filter(|s| !s.is_empty())
            .map(String::from);
        names::tenant(&name).map_err(|e| bad(e.to_string()))?;
        names::user(&owner).map_err(|e| bad(e.to_string()))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(bad(format!("tenant '{name}' is listed twice")));
        }
        specs.push(CreateSpec {
            name,
            owner,
            description,
        });
    }
    if specs.is_empty() {
        return Err(Error::BadInput {
            path: path.to_path_buf(),
            line: 0,
            message: "the file lists no tenant; write one `NAME [OWNER [DESCRIPTION]]` a line"
                .into(),
        });
    }
    Ok(specs)
}

/// The tenants a `--from-file` file names: the first word of each line of the `tenant create
/// --from-file` format (`NAME [OWNER [DESCRIPTION]]`, # comments, `-` for standard input), in
/// order, each checked as a tenant name.
pub fn parse_name_file(path: &Path) -> Result<Vec<String>> {
    Ok(parse_create_file(path)?
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// The first blank-separated field of `s` and the rest after the blanks that follow it.
pub(super) fn split_field(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Validates every spec (names, owners, duplicates) before anything is written.
pub fn validate_specs(specs: &[CreateSpec]) -> Result<()> {
    if specs.is_empty() {
        return Err(Error::Usage(
            "no tenant to create: give NAME... or --from-file FILE".into(),
        ));
    }
    for (i, s) in specs.iter().enumerate() {
        names::tenant(&s.name)?;
        names::user(&s.owner)?;
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::Usage(format!("tenant '{}' is given twice", s.name)));
        }
    }
    Ok(())
}

/// Tenants built before their files are synced and registered together: bounds the temporary
/// files a batch holds at once (and the time the registry's write lock is held per batch).
pub const BATCH_SIZE: usize = 256;

/// Creates tenants; each either fully exists afterwards or not at all. A failure of one does not
/// stop the others. One tenant goes through `create_one`; more are created in batches of up to
/// `BATCH_SIZE` (see `create_batch`), which pays one file-system sync, one directory sync and one
/// registry transaction per batch instead of per tenant, with the same crash-safety promises.
pub fn create_many(
    ws: &Workspace,
    specs: &[CreateSpec],
    recipe: Recipe<'_>,
    skip_existing: bool,
    progress: &dyn Progress,
) -> Result<Batch<Created>> {
    create_many_as(ws, specs, recipe, skip_existing, false, progress)
}

/// `create_many`; with `sqlite_files` on a PostgreSQL registry, each tenant is a SQLite file
/// under `--sqlite-data-dir` (a `db_type='sqlite'` row, which the API serves from its
/// `SQLITE_DATA_DIR`) instead of a schema.
pub fn create_many_as(
    ws: &Workspace,
    specs: &[CreateSpec],
    recipe: Recipe<'_>,
    skip_existing: bool,
    sqlite_files: bool,
    progress: &dyn Progress,
) -> Result<Batch<Created>> {
    if sqlite_files {
        ws.sqlite_layout()?;
    }
    validate_specs(specs)?;
    let mut store = ws.store_for_write()?;
    progress.start(specs.len() as u64, "creating tenants");
    // With `skip_existing`, a tenant that exists (not deleted) is a success left as it is, so
    // that a provisioning script can run again after an interruption and exit 0. Found before
    // building, and again when a concurrent create won the name meanwhile.
    let existing = |store: &mut Store, name: &str| -> Option<Result<Created>> {
        if !skip_existing {
            return None;
        }
        let t = store
            .find(name)
            .ok()
            .flatten()
            .filter(|t| !t.is_deleted())?;
        let path = if t.db_type == "sqlite" {
            ws.sqlite_file_of(&t).map(Some)
        } else {
            Ok(None)
        };
        Some(path.map(|path| Created {
            tenant: t,
            path,
            moved_aside: Vec::new(),
            existed: true,
        }))
    };
    let mut results: Vec<Option<Result<Created>>> = specs
        .iter()
        .map(|s| existing(&mut store, &s.name))
        .collect();
    for (spec, _) in specs.iter().zip(&results).filter(|(_, r)| r.is_some()) {
        progress.advance(1, &spec.name);
    }
    let todo: Vec<usize> = (0..specs.len()).filter(|i| results[*i].is_none()).collect();
    let made: Vec<CreateSpec> = todo.iter().map(|i| specs[*i].clone()).collect();
    let created = match &mut store {
        Store::Postgres(reg) if !sqlite_files => create_schemas(ws, reg, &made, recipe, progress)?,
        _ => create_files(ws, &mut store, &made, recipe, progress)?,
    };
    for (i, r) in todo.into_iter().zip(created) {
        results[i] = Some(match r {
            Err(Error::TenantExists(name)) if skip_existing => {
                existing(&mut store, &name).unwrap_or(Err(Error::TenantExists(name)))
            }
            other => other,
        });
    }
    let mut batch = Batch::default();
    for (spec, r) in specs.iter().zip(results) {
        if let Some(r) = r {
            batch.push(&spec.name, r);
        }
    }
    progress.finish();
    Ok(batch)
}

/// SQLite: each tenant's file built privately, then placed and registered (one tenant through
/// `create_one`, more in batches through `create_batch`).
pub(super) fn create_files(
    ws: &Workspace,
    reg: &mut Store,
    made: &[CreateSpec],
    recipe: Recipe<'_>,
    progress: &dyn Progress,
) -> Result<Vec<Result<Created>>> {
    let layout = ws.sqlite_layout()?;
    let system;
    let with_fixtures;
    let cloned;
    let builder: &Builder<'_> = match recipe {
        Recipe::Template {
            image,
            fixtures,
            limit,
        } => {
            cloned = crate::core::template::builder(image, fixtures, limit);
            &cloned
        }
        Recipe::System(set) => {
            system = system_builder(set);
            &system
        }
        Recipe::Fixtures {
            set,
            fixtures,
            limit,
        } => {
            with_fixtures = fixture::builder(set, fixtures, limit);
            &with_fixtures
        }
        Recipe::Built(b) => b,
    };
    let mut created: Vec<Result<Created>> = Vec::new();
    let _stoppable = crate::core::Stoppable::begin();
    match reg {
        Store::Sqlite(r) if made.len() > 1 => {
            let mut last_created = SystemTime::UNIX_EPOCH;
            for chunk in made.chunks(BATCH_SIZE) {
                // Ctrl-C: the batches registered stay, the others are not started.
                if crate::core::interrupted() {
                    created.extend(chunk.iter().map(|_| Err(Error::Interrupted)));
                    continue;
                }
                created.extend(create_batch(
                    r,
                    layout,
                    chunk,
                    builder,
                    progress,
                    &mut last_created,
                ));
            }
        }
        // One tenant, or SQLite files of a PostgreSQL registry: one at a time.
        _ => {
            for spec in made {
                if crate::core::interrupted() {
                    created.push(Err(Error::Interrupted));
                    continue;
                }
                created.push(create_one(reg, layout, spec, builder));
                progress.advance(1, &spec.name);
            }
        }
    }
    Ok(created)
}

/// PostgreSQL: each batch of tenants (schema, tables, seed rows, registry row) in one
/// transaction, see `backend::postgres::Registry::create_batch`.
pub(super) fn create_schemas(
    ws: &Workspace,
    reg: &mut crate::core::backend::postgres::Registry,
    made: &[CreateSpec],
    recipe: Recipe<'_>,
    progress: &dyn Progress,
) -> Result<Vec<Result<Created>>> {
    let set = ws.migration_set()?;
    let (plan, limit, template): (Vec<&fixture::Loaded>, Duration, Option<(&str, i64)>) =
        match recipe {
            Recipe::Built(_) => {
                // A file builder (the SQLite side of `restore`) has no schema to give: a
                // restore into PostgreSQL goes through `archive::postgres` instead.
                return Err(Error::Unsupported(
                    "a tenant built as a SQLite file cannot become a PostgreSQL schema here; restore its archive instead".into(),
                ));
            }
            Recipe::System(_) => (Vec::new(), crate::core::guard::STATEMENT_TIMEOUT, None),
            Recipe::Fixtures {
                fixtures, limit, ..
            } => (fixtures.iter().collect(), limit, None),
            Recipe::Template {
                image,
                fixtures,
                limit,
            } => (
                image
                    .loaded
                    .iter()
                    .chain(fixtures.iter().filter(|f| {
                        !image
                            .loaded
                            .iter()
                            .any(|l| l.fixture.name == f.fixture.name)
                    }))
                    .collect(),
                limit,
                Some((image.meta.name.as_str(), image.meta.generation)),
            ),
        };
    let mut created = Vec::with_capacity(made.len());
    let _stoppable = crate::core::Stoppable::begin();
    for chunk in made.chunks(PG_BATCH_SIZE) {
        // Ctrl-C: the batches committed stay, the others are not started.
        if crate::core::interrupted() {
            created.extend(chunk.iter().map(|_| Err(Error::Interrupted)));
            continue;
        }
        let made = reg.create_batch(
            chunk,
            &ws.settings.database_name,
            set,
            &plan,
            limit,
            template,
        )?;
        for (spec, r) in chunk.iter().zip(made) {
            progress.advance(1, &spec.name);
            created.push(r.map(|tenant| Created {
                tenant,
                path: None,
                moved_aside: Vec::new(),
                existed: false,
            }));
        }
    }
    Ok(created)
}
