//! `monkctl migrate ...`: adapters over `core::migrate`.

use std::time::Duration;

use crate::cli::{
    GlobalArgs, MigrateArgs, MigrateCommand, MigrateSelect, SnapshotsCommand, UpArgs,
};
use crate::core::migrate::{
    self, destructive, MigrationSet, RunInfo, RunOptions, Selection, Summary, SurveyHead,
    TenantStatus, TenantUp, UndoReport, UpHead, UpSummary,
};
use crate::core::{self, ids, Collected, Error, Outcome as TenantOutcome, RunSink, Workspace};
use crate::output::{self, size, JsonStream, List, Render, Table};

use super::{confirm, show, Bar, Outcome};

/// Where a run's outcomes go: JSON is written as they come (memory stays flat however many
/// tenants there are); a table or CSV needs them all, so they are kept. Either way a failed
/// tenant is reported on stderr as soon as it is known (above the progress bar, if any).
struct Sink<H, T> {
    out: Out<H, T>,
    bar: Bar,
    errors: output::ErrorGroups,
}

enum Out<H, T> {
    Json(Option<JsonStream<std::io::BufWriter<crate::output::Tracked<std::io::Stdout>>>>),
    Kept(Collected<H, T>),
}

impl<H, T> Sink<H, T> {
    fn new(format: crate::cli::Format, bar: &Bar) -> Sink<H, T> {
        let out = if format == crate::cli::Format::Json {
            Out::Json(None)
        } else {
            Out::Kept(Collected::default())
        };
        Sink {
            out,
            bar: bar.clone(),
            errors: output::ErrorGroups::default(),
        }
    }
}

impl<H: serde::Serialize + Clone, T: serde::Serialize> RunSink<H, T> for Sink<H, T> {
    fn begin(&mut self, head: &H) {
        match &mut self.out {
            Out::Json(js) => {
                let out = std::io::BufWriter::with_capacity(1 << 16, crate::output::stdout());
                *js = Some(JsonStream::begin(out, head, "tenants", "results"));
            }
            Out::Kept(c) => c.begin(head),
        }
    }

    fn outcome(&mut self, o: TenantOutcome<T>) {
        if !o.ok {
            if let Some(line) = self
                .errors
                .add(&o.tenant, o.error.as_deref().unwrap_or("failed"))
            {
                self.bar.note(&line);
            }
        }
        match &mut self.out {
            Out::Json(js) => {
                if let Some(js) = js {
                    js.item(&o);
                }
            }
            Out::Kept(c) => c.outcome(o),
        }
    }
}

/// The counts that close the `tenants` object of a run's JSON.
#[derive(serde::Serialize)]
struct Counts {
    succeeded: usize,
    failed: usize,
}

/// Finishes a run's output: the end of the streamed JSON, or the whole table/CSV of `doc`.
fn finish<H, T, D: Render>(
    format: crate::cli::Format,
    sink: Sink<H, T>,
    counts: Counts,
    tail: &impl serde::Serialize,
    doc: impl FnOnce(Vec<TenantOutcome<T>>) -> D,
) -> anyhow::Result<()> {
    for line in sink.errors.repeats() {
        eprintln!("{line}");
    }
    match sink.out {
        Out::Json(Some(js)) => Ok(js.finish(&counts, tail)?),
        Out::Json(None) => Ok(()),
        Out::Kept(c) => Ok(output::print(format, &doc(c.results))?),
    }
}

fn timeout(s: &str) -> anyhow::Result<Duration> {
    Ok(ids::parse_wait(s).map_err(|e| Error::Usage(format!("--busy-timeout: {e}")))?)
}

fn options(s: &MigrateSelect) -> anyhow::Result<RunOptions> {
    Ok(RunOptions {
        selection: Selection {
            tenants: super::picked(&[], &s.pick)?,
            include_trashed: s.include_trashed,
        },
        target: s.target,
        jobs: crate::core::pool::jobs(s.jobs, crate::core::pool::Work::Waiting),
        busy_timeout: timeout(&s.busy_timeout)?,
        ..RunOptions::default()
    })
}

pub fn run(g: &GlobalArgs, a: MigrateArgs) -> Outcome {
    let ws = super::workspace(g)?;
    match &a.command {
        MigrateCommand::Status(s) => survey(g, &ws, ws.migration_set()?, s, false),
        MigrateCommand::Plan(s) => survey(g, &ws, ws.migration_set()?, s, true),
        MigrateCommand::Up(u) => {
            let set = ws.migration_set()?;
            if u.dry_run {
                return survey(g, &ws, set, &u.select, true);
            }
            let mut opts = options(&u.select)?;
            opts.fail_fast = u.fail_fast;
            opts.allow_destructive = u.allow_destructive;
            opts.statement_timeout = super::statement_timeout(&u.limit)?;
            if u.allow_destructive {
                // On PostgreSQL the statements are found per tenant, from the server's own view
                // of what each transaction destroyed; there is no baseline to list them on.
                let listed = match ws.backend {
                    core::Backend::Postgres(_) => Err(None),
                    core::Backend::Sqlite => {
                        migrate::destructive_in_set(set, opts.target).map_err(Some)
                    }
                };
                let question = match listed {
                    Ok(findings) if findings.is_empty() => None,
                    Ok(findings) => Some(format!(
                        "Apply destructive migrations ({}) to the tenants that have them pending; each is snapshotted first",
                        destructive::summary(&findings)
                    )),
                    // A migration about tables a baseline tenant lacks (the API's model tables)
                    // cannot be looked at in advance; each tenant is still analysed against its
                    // own schema before anything runs on it.
                    Err(Some(e @ (Error::Refused { .. } | Error::StatementTimeout { .. }))) => {
                        return Err(e.into())
                    }
                    Err(e) => {
                        if let Some(e) = e {
                            output::note(&format!("the destructive statements could not be listed in advance on a baseline tenant ({e})"));
                        }
                        Some("Apply the pending migrations, destructive statements included, to the selected tenants; each tenant that has them is snapshotted first".into())
                    }
                };
                if let Some(q) = question {
                    confirm(&q, g.yes)?;
                }
            }
            let bar = Bar::new();
            let mut sink = Sink::new(g.format, &bar);
            let report = migrate::up(&ws, set, &opts, &bar, &mut sink)?;
            if let Some(h) = &report.head.took_over_stale_lock {
                output::note(&format!(
                    "took over the migration lock left by pid {} on {} ({}) since {}, which is no longer running",
                    h.pid, h.host, h.command, h.since
                ));
            }
            let tail = UpTail {
                snapshots: report.snapshots.as_ref(),
                not_started: &report.not_started,
                summary: &report.summary,
            };
            finish(
                g.format,
                sink,
                Counts {
                    succeeded: report.tenants.succeeded,
                    failed: report.tenants.failed,
                },
                &tail,
                |results| UpDoc {
                    head: &report.head,
                    results,
                    tail: &tail,
                },
            )?;
            let retry = report.retry();
            if !retry.is_empty() {
                eprintln!(
                    "{} failed, {} not started; retry with: {}",
                    report.summary.failed,
                    report.summary.not_started,
                    retry_line(g, u, &report)
                );
            }
            Ok(report.exit_code())
        }
        MigrateCommand::Undo(u) => {
            let runs = migrate::list_runs(&ws)?;
            let last = runs.iter().find(|r| !r.undone);
            if let Some(last) = last {
                confirm(
                    &format!(
                        "Restore {} tenant(s) from the snapshots of run {} (their migrations are undone)",
                        last.to_restore, last.run_id
                    ),
                    g.yes,
                )?;
            }
            let confirmed = last.map(|r| r.run_id.as_str());
            crate::core::pause_point("migrate.undo.confirmed");
            let report = migrate::undo(&ws, confirmed, timeout(&u.busy_timeout)?, &Bar::new())?;
            output::print(g.format, &report)?;
            for o in report.tenants.results.iter().filter(|o| !o.ok) {
                eprintln!(
                    "skipped: {}: {}",
                    o.tenant,
                    o.error.as_deref().unwrap_or("failed")
                );
            }
            Ok(report.tenants.exit_code())
        }
        MigrateCommand::Snapshots(SnapshotsCommand::List) => {
            show(g.format, &List(migrate::list_runs(&ws)?))
        }
        MigrateCommand::Snapshots(SnapshotsCommand::Prune(p)) => {
            let older = p
                .older_than
                .as_deref()
                .map(ids::parse_duration)
                .transpose()
                .map_err(Error::Usage)?;
            let due = migrate::prune_candidates(&ws, p.keep, older)?;
            if !due.is_empty() {
                confirm(
                    &format!(
                        "Remove the snapshots of {} run(s): {}",
                        due.len(),
                        due.iter()
                            .map(|r| r.run_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    g.yes,
                )?;
            }
            show(g.format, &List(migrate::prune(&ws, &due)?))
        }
    }
}

/// The `migrate up` that retries the tenants of `report` that failed or did not start, with every
/// flag of this run that changes what runs, and `--allow-destructive` when that is what some
/// tenants lacked (with `--yes` where no terminal could answer its question).
fn retry_line(g: &GlobalArgs, u: &UpArgs, report: &migrate::UpReport) -> String {
    let s = &u.select;
    let mut args: Vec<String> = vec!["migrate".into(), "up".into()];
    args.extend(["--tenant".into(), report.retry().join(",")]);
    if s.include_trashed {
        args.push("--include-trashed".into());
    }
    if let Some(t) = s.target {
        args.extend(["--target".into(), t.to_string()]);
    }
    if let Some(j) = s.jobs {
        args.extend(["--jobs".into(), j.to_string()]);
    }
    if s.busy_timeout != crate::cli::DEFAULT_BUSY_TIMEOUT {
        args.extend(["--busy-timeout".into(), s.busy_timeout.clone()]);
    }
    if u.fail_fast {
        args.push("--fail-fast".into());
    }
    let refused = report
        .tenants
        .failures
        .iter()
        .any(|(_, code)| *code == crate::core::exit::DESTRUCTIVE);
    if u.allow_destructive || refused {
        args.push("--allow-destructive".into());
        if g.yes || !super::can_prompt() {
            args.push("--yes".into());
        }
    }
    super::command_line(g, &args)
}

/// `status` (`plan == false`), `plan` and `up --dry-run`.
fn survey(
    g: &GlobalArgs,
    ws: &Workspace,
    set: &MigrationSet,
    s: &MigrateSelect,
    plan: bool,
) -> Outcome {
    let bar = Bar::new();
    let mut sink = Sink::new(g.format, &bar);
    let survey = migrate::survey(ws, set, &options(s)?, plan, &bar, &mut sink)?;
    let tail = SurveyTail {
        summary: &survey.summary,
    };
    finish(
        g.format,
        sink,
        Counts {
            succeeded: survey.tenants.succeeded,
            failed: survey.tenants.failed,
        },
        &tail,
        |results| SurveyDoc {
            head: &survey.head,
            results,
            summary: &survey.summary,
            plan,
        },
    )?;
    if plan {
        if let Some(h) = &survey.head.run_in_progress {
            output::note(&format!(
                "a migration run is in progress: pid {} on {} ({}) since {}",
                h.pid, h.host, h.command, h.since
            ));
        }
        Ok(survey.plan_exit_code())
    } else {
        Ok(survey.tenants.exit_code())
    }
}

fn versions(v: &[i64]) -> String {
    v.iter()
        .map(|v| format!("V{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(serde::Serialize)]
struct SurveyTail<'a> {
    summary: &'a Summary,
}

/// A whole survey, for `status` (false) or `plan` (true) as a table or CSV (JSON is streamed,
/// with the same shape).
#[derive(serde::Serialize)]
struct SurveyDoc<'a> {
    #[serde(flatten)]
    head: &'a SurveyHead,
    #[serde(serialize_with = "as_batch")]
    results: Vec<TenantOutcome<TenantStatus>>,
    summary: &'a Summary,
    #[serde(skip)]
    plan: bool,
}

/// `results` as the `tenants` object of the JSON: `{results, succeeded, failed}`.
fn as_batch<T: serde::Serialize, S: serde::Serializer>(
    results: &[TenantOutcome<T>],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let ok = results.iter().filter(|o| o.ok).count();
    let mut st = s.serialize_struct("Batch", 3)?;
    st.serialize_field("results", results)?;
    st.serialize_field("succeeded", &ok)?;
    st.serialize_field("failed", &(results.len() - ok))?;
    st.end()
}

/// A footer line of the counts that are not zero: `58 up to date, 2 diverged` (`none` if all are).
fn counts(parts: &[(usize, &str)]) -> String {
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

impl Render for SurveyDoc<'_> {
    fn table(&self) -> Table {
        let plan = self.plan;
        let mut t = Table::new(vec!["tenant", "version", "pending", "state", "detail"]);
        for o in &self.results {
            let Some(st) = &o.result else {
                t.row(
                    vec![
                        o.tenant.clone(),
                        String::new(),
                        String::new(),
                        "error".into(),
                        o.error.clone().unwrap_or_default(),
                    ],
                    true,
                );
                continue;
            };
            let i = &st.inspection;
            let mut states = Vec::new();
            let mut detail: Vec<String> = Vec::new();
            if !i.diverged.is_empty() {
                states.push("diverged");
                detail.extend(i.diverged.iter().cloned());
            }
            if !i.missing.is_empty() {
                states.push("missing");
                detail.extend(i.missing.iter().cloned());
            }
            if st.locked {
                states.push("locked");
            }
            if !st.destructive.is_empty() {
                states.push("destructive");
                detail.push(destructive::summary(&st.destructive));
            }
            if let Some(f) = &st.would_fail {
                states.push("would_fail");
                detail.push(f.clone());
            }
            if i.adopt {
                states.push("adopt");
            }
            // A tenant that is up to date or simply behind is counted in the summary; any
            // other state is listed even among thousands.
            let attention = !states.is_empty();
            if states.is_empty() {
                states.push(if i.pending.is_empty() {
                    "up_to_date"
                } else if plan {
                    "will_migrate"
                } else {
                    "pending"
                });
            }
            t.row(
                vec![
                    o.tenant.clone(),
                    format!("V{}", i.version),
                    versions(&i.pending),
                    states.join(","),
                    detail.join("; "),
                ],
                attention,
            );
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        let s = self.summary;
        let inf = &self.head.infra;
        let by: Vec<String> = s
            .by_version
            .iter()
            .map(|(v, n)| format!("V{v}: {n}"))
            .collect();
        vec![
            format!(
                "infra: V{} of V{}{}",
                inf.version,
                inf.latest,
                if inf.pending { " (pending)" } else { "" }
            ),
            format!(
                "tenants: {} (by version: {}); target V{}",
                s.tenants,
                if by.is_empty() {
                    "-".into()
                } else {
                    by.join(", ")
                },
                self.head.target,
            ),
            counts(&[
                (s.up_to_date, "up to date"),
                (s.pending, "pending"),
                (s.adopt, "to adopt"),
                (s.diverged, "diverged"),
                (s.missing, "missing"),
                (s.locked, "locked"),
                (s.destructive, "destructive"),
                (s.would_fail, "would fail"),
                (s.failed, "unreadable"),
                (s.skipped, "skipped (trashed/deleted)"),
            ]),
        ]
    }
}

#[derive(serde::Serialize)]
struct UpTail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshots: Option<&'a std::path::PathBuf>,
    not_started: &'a [String],
    summary: &'a UpSummary,
}

/// A whole run of `up`, as a table or CSV (JSON is streamed, with the same shape).
#[derive(serde::Serialize)]
struct UpDoc<'a> {
    #[serde(flatten)]
    head: &'a UpHead,
    #[serde(rename = "tenants", serialize_with = "as_batch")]
    results: Vec<TenantOutcome<TenantUp>>,
    #[serde(flatten)]
    tail: &'a UpTail<'a>,
}

impl Render for UpDoc<'_> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "from", "to", "result"]);
        for o in &self.results {
            match &o.result {
                Some(r) => {
                    let mut what = Vec::new();
                    if r.adopted {
                        what.push("adopted".to_string());
                    }
                    if !r.applied.is_empty() {
                        what.push(format!("applied {}", versions(&r.applied)));
                    }
                    if r.snapshot.is_some() {
                        what.push("snapshotted".into());
                    }
                    if what.is_empty() {
                        what.push("up to date".into());
                    }
                    t.row(
                        vec![
                            o.tenant.clone(),
                            format!("V{}", r.from),
                            format!("V{}", r.to),
                            what.join(", "),
                        ],
                        false,
                    );
                }
                None => t.row(
                    vec![
                        o.tenant.clone(),
                        String::new(),
                        String::new(),
                        format!("failed: {}", o.error.as_deref().unwrap_or("")),
                    ],
                    true,
                ),
            }
        }
        for n in self.tail.not_started {
            t.row(
                vec![
                    n.clone(),
                    String::new(),
                    String::new(),
                    "not started (--fail-fast)".into(),
                ],
                true,
            );
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        let s = self.tail.summary;
        let mut out = vec![
            format!(
                "infra: V{} -> V{}",
                self.head.infra.from, self.head.infra.to
            ),
            format!("run {}: {} tenants", self.head.run_id, s.tenants),
            counts(&[
                (s.migrated, "migrated"),
                (s.adopted, "adopted"),
                (s.up_to_date, "up to date"),
                (s.failed, "failed"),
                (s.not_started, "not started"),
                (s.skipped, "skipped (trashed/deleted)"),
            ]),
        ];
        if let Some(p) = self.tail.snapshots {
            out.push(format!(
                "snapshots: {} (`migrate undo` restores them)",
                p.display()
            ));
        }
        out
    }
}

impl Render for UndoReport {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "result"]);
        for o in &self.tenants.results {
            t.row(
                vec![
                    o.tenant.clone(),
                    match &o.result {
                        Some(r) => format!("restored V{} -> V{}", r.was, r.restored_to),
                        None => format!("skipped: {}", o.error.as_deref().unwrap_or("")),
                    },
                ],
                !o.ok,
            );
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        vec![format!(
            "run {}: {} restored, {} skipped",
            self.run_id, self.tenants.succeeded, self.tenants.failed
        )]
    }
}

impl Render for List<RunInfo> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["run_id", "tenants", "size", "undone", "modified"]);
        for r in &self.0 {
            t.rows.push(vec![
                r.run_id.clone(),
                r.tenants.to_string(),
                size(Some(r.bytes)),
                r.undone.to_string(),
                r.modified.clone(),
            ]);
        }
        t
    }
}
