//! `comity report` and `comity policy check`: transparency reports and policy files.

use std::path::Path;

use anyhow::{Context, bail};

use super::{ReportCommand, ReportFormat, client, output};
use crate::report::{Report, ReportFormats};

pub(super) async fn run(command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Transparency {
            period,
            format,
            connection,
        } => {
            let report = client(&connection)?.transparency(period.as_deref()).await?;
            match format {
                ReportFormat::Table => print!("{}", report.to_table()),
                ReportFormat::Json => output::json(&report)?,
                ReportFormat::Csv => print!("{}", report.to_csv()),
                ReportFormat::Html => print!("{}", report.to_html()),
            }
            Ok(())
        }
        ReportCommand::Bloc {
            period,
            format,
            connection,
        } => {
            let reports = client(&connection)?.bloc_reports(&period).await?;
            if reports.is_empty() && !matches!(format, ReportFormat::Json) {
                eprintln!("No member has published a report for {period} yet.");
            }
            match format {
                ReportFormat::Json => output::json(&reports)?,
                ReportFormat::Table => {
                    for report in &reports {
                        println!("{}", report.to_table());
                    }
                }
                ReportFormat::Csv => bloc_csv(&reports),
                ReportFormat::Html => {
                    print!(
                        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Transparency reports, {period}</title></head><body>\n"
                    );
                    for report in &reports {
                        print!("{}", crate::report::html_section(report));
                    }
                    println!("</body></html>");
                }
            }
            Ok(())
        }
    }
}

/// The members' reports as one table: the member's jurisdiction leads each row.
fn bloc_csv(reports: &[Report]) {
    let mut first = true;
    for report in reports {
        for (i, line) in report.to_csv().lines().enumerate() {
            if i == 0 {
                if first {
                    println!("member,{line}");
                    first = false;
                }
                continue;
            }
            println!("{},{line}", report.jurisdiction);
        }
    }
}

pub(super) fn check_policy(file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match crate::policy::parse(&text) {
        Ok(policy) => {
            println!(
                "{}: valid ({} agreement(s), {} refused offence categor(ies), dual criminality {})",
                file.display(),
                policy.agreements.len(),
                policy.refused_offences.len(),
                if policy.dual_criminality.is_some() {
                    "checked"
                } else {
                    "not checked"
                }
            );
            for partner in policy.expired(comity_protocol::Timestamp::now()) {
                println!("warning: the agreement with {partner} has expired");
            }
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{}:{}: {}: {}", file.display(), p.line, p.field, p.problem);
            }
            bail!("{} problem(s) in {}", problems.len(), file.display())
        }
    }
}
