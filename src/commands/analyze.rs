//! `capdiag analyze`: every rule over captures; findings for people or as one JSON document.

use super::{
    EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, count_line_n, fail_threshold, is_broken_pipe, name_of,
    progress_bar, report_error, run_rules, warn_if_incomplete,
};
use crate::cli::AnalyzeFormat;
use crate::output::FileSummary;
use crate::output::table::summary_text;
use std::io;

#[derive(serde::Serialize)]
struct AnalyzeFileSummary {
    #[serde(flatten)]
    summary: FileSummary,
    findings: usize,
    /// Items rules dropped because their tables were full.
    rule_state_dropped: u64,
    /// Findings suppressed as repeats (absent when none were).
    #[serde(skip_serializing_if = "is_zero")]
    findings_suppressed: u64,
}

/// `capdiag analyze`.
pub fn analyze(args: &crate::cli::AnalyzeArgs) -> u8 {
    use crate::finding::Severity;
    use crate::output::finding_writer::{FindingWriter, Origin, Style};
    let json = args.format == AnalyzeFormat::Json;
    let html = args.format == AnalyzeFormat::Html;
    // The page is written once every capture is read.
    let report = std::cell::RefCell::new(crate::output::html::Report::default());
    let Some(keys) = super::tls_keys(&args.tls, false) else {
        return EXIT_ERROR;
    };
    let style = if json {
        Style::Json
    } else {
        Style::Text(super::text_style(&args.diagram))
    };
    let mut out = match FindingWriter::start(io::BufWriter::new(io::stdout().lock()), style) {
        Ok(w) => w,
        Err(e) if is_broken_pipe(&e) => return EXIT_OK,
        Err(e) => {
            report_error("writing output", &e);
            return EXIT_ERROR;
        }
    };
    let limits = args.limits.to_limits();
    let mut code = EXIT_OK;
    let mut worst: Option<Severity> = None;
    let mut summaries = Vec::new();
    let mut io_error: Option<io::Error> = None;
    // Set when the output has gone: reading stops.
    let output_gone = std::cell::Cell::new(false);
    for path in &args.files {
        if io_error.is_some() {
            // The output has gone: nobody reads what the other files would give.
            break;
        }
        let name = name_of(path);
        let Some(mut reader) = super::open_with_keys(path, &name, &keys) else {
            code = EXIT_ERROR;
            continue;
        };
        let mut n = 0usize;
        let mut on_finding = |f: crate::finding::Finding| {
            n += 1;
            worst = worst.max(Some(f.severity));
            if html {
                report.borrow_mut().finding(f, n);
                return;
            }
            if io_error.is_some() {
                return;
            }
            let extract_keys = super::extract_key_args(&args.tls, &keys);
            let from = Origin {
                file: Some(&name),
                interface: None,
                extract_from: &name,
                extract_keys: &extract_keys,
            };
            if let Err(e) = out.finding(&f, n, &from, 0) {
                io_error = Some(e);
                output_gone.set(true);
            }
        };
        let mut on_event = |ev: &crate::engine::Event<'_>| report.borrow_mut().event(ev);
        let bar = progress_bar(path, !json);
        let super::RulesRun {
            end,
            engine,
            state_dropped: dropped,
            suppressed,
        } = match run_rules(
            &mut reader,
            args.threads,
            limits,
            &keys,
            &args.rule_args.rules,
            &mut on_finding,
            if html { Some(&mut on_event) } else { None },
            bar.as_ref(),
            &|| !output_gone.get(),
        ) {
            Ok(x) => x,
            Err(e) => {
                report_error("--rules", &e);
                return EXIT_ERROR;
            }
        };
        if output_gone.get() {
            // Nobody reads on: the rest of this file and the other files are left unread.
            break;
        }
        let summary = FileSummary::new(
            &name,
            reader.format(),
            reader.link_types(),
            engine.stats(),
            &end,
        );
        if html {
            report
                .borrow_mut()
                .file_done(summary.clone(), n, dropped, suppressed);
        } else if !json && io_error.is_none() {
            let mut text = summary_text(&summary);
            text.push_str(&super::rules_summary(dropped, suppressed));
            text.push_str(&count_line_n(n));
            text.push_str("\n\n");
            if let Err(e) = out.text(&text) {
                io_error = Some(e);
            }
        }
        warn_if_incomplete(&name, &end);
        summaries.push(AnalyzeFileSummary {
            summary,
            findings: n,
            rule_state_dropped: dropped,
            findings_suppressed: suppressed,
        });
    }
    if json
        && io_error.is_none()
        && let Err(e) = out.end_json(&summaries)
    {
        io_error = Some(e);
    }
    if html && io_error.is_none() {
        let mut r = report.into_inner();
        r.set_extract_args(super::extract_key_args(&args.tls, &keys));
        if let Err(e) = out.text(&r.render()) {
            io_error = Some(e);
        }
    }
    if io_error.is_none()
        && let Err(e) = out.flush()
    {
        io_error = Some(e);
    }
    if let Some(e) = io_error
        && !is_broken_pipe(&e)
    {
        report_error("writing output", &e);
        return EXIT_ERROR;
    }
    if code == EXIT_ERROR {
        return EXIT_ERROR;
    }
    match (fail_threshold(args.rule_args.fail_on), worst) {
        (Some(t), Some(w)) if w >= t => EXIT_FINDINGS,
        _ => EXIT_OK,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
