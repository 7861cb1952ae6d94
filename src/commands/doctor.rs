//! `monkctl doctor`: an adapter over `core::doctor` that renders the findings and turns the
//! overall status into the exit code (0 healthy, 10 degraded, 11 failing; a Ctrl-C that
//! stopped the tenant checks is 130, as for every command).

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::core::doctor::{self, Options, Report, Severity, Status};
use crate::output::{self, opt, Render, Table};

use super::{workspace, Bar, Outcome};

pub fn run(g: &GlobalArgs, a: DoctorArgs) -> Outcome {
    let tenants = super::picked(&[], &a.pick)?;
    let ws = workspace(g)?;
    let opts = Options {
        tenants,
        full: a.full,
        repair: a.repair,
        jobs: crate::core::pool::jobs(a.jobs, crate::core::pool::Work::Files),
    };
    let report = doctor::run(&ws, &opts, &Bar::new())?;
    output::print(g.format, &report)?;
    Ok(report.status.exit_code())
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Healthy => "healthy",
        Status::Degraded => "degraded",
        Status::Failing => "failing",
    }
}

impl Render for Report {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["severity", "code", "tenant", "what", "fix"]);
        for f in &self.findings {
            let what = match &f.path {
                Some(p) if !f.message.contains(&p.display().to_string()) => {
                    format!("{} ({})", f.message, p.display())
                }
                _ => f.message.clone(),
            };
            t.rows.push(vec![
                match f.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Error => "error",
                }
                .into(),
                f.code.into(),
                if f.count > 1 {
                    format!("{} tenants", f.count)
                } else {
                    opt(&f.tenant)
                },
                what,
                f.fix.clone(),
            ]);
        }
        t.narrow(&["severity", "tenant", "what", "fix"])
    }

    fn footer(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .repairs
            .iter()
            .map(|r| {
                let target = r
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .or_else(|| r.tenant.clone())
                    .unwrap_or_default();
                match &r.error {
                    None => format!("repaired {}: {target}: {}", r.code, r.action),
                    Some(e) => format!("NOT repaired {}: {target}: {}: {e}", r.code, r.action),
                }
            })
            .collect();
        let s = &self.summary;
        let before = self
            .status_before
            .map(|b| format!(" (was {} before repairs)", status_word(b)))
            .unwrap_or_default();
        lines.push(format!(
            "{}{before}: {} error(s), {} warning(s), {} info; {} tenant(s) checked",
            status_word(self.status),
            s.errors,
            s.warnings,
            s.infos,
            s.tenants_checked
        ));
        if self.interrupted {
            lines.push("interrupted: the tenants after these were not checked".into());
        }
        lines
    }
}
