//! `analyze --format html`: one self-contained page (inline CSS and SVG, no script, no request
//! when opened) with the captures' summaries, a timeline of each, and every finding with its
//! ladder diagram. Built with maud: every text from a capture is spliced in escaped (maud's
//! `(expr)`), and shown [`printable`] as the terminal shows it (controls and bidi overrides
//! spelled out). Bounded: [`MAX_DETAILED`] findings in full, [`MAX_LISTED`] more one line
//! each, the rest counted; the timelines have fixed sizes. Structure: `docs/report.md`.

pub mod svg;
pub mod timeline;

use super::FileSummary;
use super::findings::extract_command;
use super::ladder::Ladder;
use super::table::summary_details;
use crate::capture::TimestampNs;
use crate::finding::{Finding, Severity};
use crate::text::printable;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::BTreeMap;
use timeline::Timeline;

/// Findings shown in full (detail, diagram, evidence, remediation).
pub const MAX_DETAILED: usize = 200;
/// Findings listed one line each after those.
pub const MAX_LISTED: usize = 5000;

const CSS: &str = include_str!("report.css");
/// Nothing but the inline style may load or run: no script, no image, no font, no request.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// One finding kept for the page.
struct Kept {
    n: usize,
    file: usize,
    finding: Finding,
}

/// A finding listed in one line.
struct Brief {
    n: usize,
    file: usize,
    rule: &'static str,
    severity: Severity,
    key_frame: u64,
    title: String,
}

/// One capture of the report.
struct FileEntry {
    summary: FileSummary,
    findings: usize,
    timeline: Timeline,
    rule_state_dropped: u64,
    suppressed: u64,
}

/// The report, as the run makes it.
#[derive(Default)]
pub struct Report {
    files: Vec<FileEntry>,
    detailed: Vec<Kept>,
    listed: Vec<Brief>,
    /// Findings neither in full nor listed.
    not_listed: u64,
    /// Findings by rule: severity, count.
    by_rule: BTreeMap<&'static str, (Severity, u64)>,
    by_severity: [u64; 3],
    /// What a finding's extract suggestion adds (TLS key logs), quoted.
    extract_args: String,
    /// The timeline of the capture being read.
    current: Timeline,
}

impl Report {
    /// What each finding's extract suggestion adds (the run's TLS key logs and
    /// `--with-keys`, already quoted for a shell).
    pub fn set_extract_args(&mut self, extract_args: String) {
        self.extract_args = extract_args;
    }

    /// Counts an exchange or a failed connection attempt of the capture being read on its
    /// timeline.
    pub fn event(&mut self, ev: &crate::engine::Event<'_>) {
        match ev {
            crate::engine::Event::Exchange(ex) => self.current.exchange(ex),
            crate::engine::Event::Attempt(a) => self.current.attempt(a),
            _ => {}
        }
    }

    /// Finding `n` of the capture being read (the files added so far come before it).
    pub fn finding(&mut self, f: Finding, n: usize) {
        let file = self.files.len();
        let e = self.by_rule.entry(f.rule).or_insert((f.severity, 0));
        e.0 = e.0.max(f.severity);
        e.1 += 1;
        if let Some(c) = self.by_severity.get_mut(f.severity as usize) {
            *c += 1;
        }
        if self.detailed.len() < MAX_DETAILED {
            self.detailed.push(Kept {
                n,
                file,
                finding: f,
            });
        } else if self.listed.len() < MAX_LISTED {
            self.listed.push(Brief {
                n,
                file,
                rule: f.rule,
                severity: f.severity,
                key_frame: f.key_frame,
                title: crate::text::shorten(&f.title, 200),
            });
        } else {
            self.not_listed += 1;
        }
    }

    /// The capture being read ended: its summary, findings and rules' counts.
    pub fn file_done(
        &mut self,
        summary: FileSummary,
        findings: usize,
        rule_state_dropped: u64,
        suppressed: u64,
    ) {
        self.files.push(FileEntry {
            summary,
            findings,
            timeline: std::mem::take(&mut self.current),
            rule_state_dropped,
            suppressed,
        });
    }

    /// The page.
    pub fn render(&self) -> String {
        let total: u64 = self.by_severity.iter().sum();
        let title = match self.files.as_slice() {
            [one] => format!("capdiag report: {}", printable(&one.summary.path)),
            _ => format!("capdiag report: {} captures", self.files.len()),
        };
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta http-equiv="Content-Security-Policy" content=(CSP);
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    meta name="generator" content={"capdiag " (env!("CARGO_PKG_VERSION"))};
                    title { (title) }
                    style { (PreEscaped(CSS)) }
                }
                body {
                    header id="top" {
                        h1 { "capdiag report" }
                        p class="meta" {
                            (self.files.len()) " capture" @if self.files.len() != 1 { "s" } " · "
                            (total) " finding" @if total != 1 { "s" }
                            " · capdiag " (env!("CARGO_PKG_VERSION"))
                        }
                    }
                    section id="summary" {
                        h2 { "Summary" }
                        ul class="counts" {
                            @for (i, name) in ["info", "warning", "error"].iter().enumerate().rev() {
                                li class={"sev-" (name)} {
                                    span class="sev" { (name.to_uppercase()) } " "
                                    (self.by_severity.get(i).copied().unwrap_or(0))
                                }
                            }
                        }
                        @if !self.by_rule.is_empty() {
                            table class="rules" {
                                thead { tr { th { "rule" } th { "severity" } th class="num" { "findings" } } }
                                tbody {
                                    @for (rule, (sev, n)) in &self.by_rule {
                                        tr data-rule=(rule) {
                                            td { code { (rule) } }
                                            td class={"sev sev-" (sev.as_str())} { (sev.as_str()) }
                                            td class="num" { (n) }
                                        }
                                    }
                                }
                            }
                        }
                        div class="summary-grid" {
                            @for (i, f) in self.files.iter().enumerate() {
                                (file_summary(i, f))
                            }
                        }
                    }
                    section id="timeline" {
                        h2 { "Timeline" }
                        @for (i, f) in self.files.iter().enumerate() {
                            (self.file_timeline(i, f))
                        }
                    }
                    section id="findings" {
                        h2 { "Findings" }
                        @if total == 0 {
                            p { "No findings." }
                        }
                        @for k in &self.detailed {
                            (self.finding_markup(k))
                        }
                        @if !self.listed.is_empty() || self.not_listed > 0 {
                            (self.more())
                        }
                    }
                    footer {
                        "Made by capdiag " (env!("CARGO_PKG_VERSION")) " from the captures above. Frame numbers are Wireshark's; "
                        "each finding's filter shows its evidence there. Text from the captures is shown escaped."
                    }
                }
            }
        };
        page.into_string()
    }

    fn file_name(&self, i: usize) -> String {
        self.files
            .get(i)
            .map(|f| f.summary.path.clone())
            .unwrap_or_default()
    }

    fn file_timeline(&self, i: usize, f: &FileEntry) -> Markup {
        let marks: Vec<svg::Mark<'_>> = self
            .detailed
            .iter()
            .filter(|k| k.file == i)
            .map(|k| svg::Mark {
                n: k.n,
                f: &k.finding,
            })
            .collect();
        // The capture's first and latest frame; else what was counted or marked.
        let range = match (f.summary.first_ts, f.summary.last_ts) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => f.timeline.range().or_else(|| {
                let times = marks.iter().map(|m| svg::key_time(m.f));
                Some((times.clone().min()?, times.max()?))
            }),
        };
        let unmarked = f.findings.saturating_sub(marks.len());
        html! {
            figure class="timeline" data-file=(f.summary.path) {
                @match range {
                    Some((a, b)) if f.timeline.exchanges + f.timeline.failed_attempts > 0 || !marks.is_empty() => {
                        (svg::timeline(&f.timeline, a, b, &marks))
                    }
                    _ => {
                        p class="muted" { "No HTTP exchange, failed connection or finding to draw." }
                    }
                }
                figcaption {
                    (printable(&f.summary.path)) ": " (f.timeline.exchanges) " exchanges and "
                    (f.timeline.failed_attempts) " failed connection attempts"
                    @if let Some((a, b)) = range {
                        " from " (utc(a)) " to " (utc(b)) " (" (super::ladder::since(b.saturating_sub(a))) ")"
                    }
                    ", by the time of each request; findings marked at their key frame."
                    @if unmarked > 0 {
                        " " (unmarked) " findings not marked (only those shown in full are)."
                    }
                }
            }
        }
    }

    fn finding_markup(&self, k: &Kept) -> Markup {
        let f = &k.finding;
        let file = self.file_name(k.file);
        let extract = extract_command(f, k.n, &file, &self.extract_args);
        let frames: Vec<String> = f.frames.iter().map(u64::to_string).collect();
        let streams: Vec<String> = f.streams.iter().map(u64::to_string).collect();
        html! {
            article class={"finding sev-" (f.severity.as_str())}
                id={"finding-" (k.file + 1) "-" (k.n)}
                data-rule=(f.rule) data-severity=(f.severity.as_str())
                data-key-frame=(f.key_frame) data-frames=(frames.join(" ")) data-file=(file) {
                h3 {
                    span class="sev" { (f.severity.as_str().to_uppercase()) } " "
                    code class="rule" { (f.rule) } " #" (k.n) ": "
                    span class="title" { (printable(&f.title)) }
                }
                p class="facts" {
                    (printable(&file)) " · key frame " strong class="key-frame" { (f.key_frame) }
                    " · " (f.frames.len()) " evidence frames · stream" @if f.streams.len() != 1 { "s" } " "
                    @if streams.is_empty() { "-" } @else { (streams.join(", ")) }
                }
                p class="detail" { (printable(&f.detail)) }
                @if let Some(l) = Ladder::of(f) {
                    figure class="ladder" {
                        (svg::ladder(&l, f))
                        @if l.rows_left_out > 0 {
                            figcaption class="left-out" { (l.rows_left_out) " more evidence frames not drawn (in the table below)." }
                        }
                    }
                }
                table class="evidence" {
                    thead { tr { th class="num" { "frame" } th class="num" { "stream" } th { "evidence" } } }
                    tbody {
                        @for e in &f.evidence {
                            tr class=[(e.frame == f.key_frame).then_some("key")] data-frame=(e.frame) {
                                td class="num" { (e.frame) }
                                td class="num" { @if let Some(s) = e.stream { (s) } }
                                td { (printable(&e.what)) }
                            }
                        }
                    }
                }
                p class="remediation" { strong { "Remediation: " } (printable(&f.remediation)) }
                dl class="tools" {
                    dt { "Wireshark filter" } dd { code class="filter" { (printable(&f.filter)) } }
                    dt { "Extract evidence" } dd { code class="extract" { (printable(&extract)) } }
                }
            }
        }
    }

    fn more(&self) -> Markup {
        html! {
            section id="more-findings" {
                h3 { "More findings" }
                p class="left-out" {
                    "Only the first " (MAX_DETAILED) " findings are shown in full; "
                    (self.listed.len()) " more are listed here"
                    @if self.not_listed > 0 { ", and " (self.not_listed) " more are not listed at all" }
                    ". Every finding is in " code { "capdiag analyze --format json" } "."
                }
                @if !self.listed.is_empty() {
                    table class="more" {
                        thead { tr { th { "#" } th { "capture" } th { "severity" } th { "rule" } th class="num" { "key frame" } th { "title" } } }
                        tbody {
                            @for b in &self.listed {
                                tr data-rule=(b.rule) data-key-frame=(b.key_frame) {
                                    td { (b.n) }
                                    td { (printable(&self.file_name(b.file))) }
                                    td class={"sev sev-" (b.severity.as_str())} { (b.severity.as_str()) }
                                    td { code { (b.rule) } }
                                    td class="num" { (b.key_frame) }
                                    td { (printable(&b.title)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn file_summary(i: usize, f: &FileEntry) -> Markup {
    let s = &f.summary;
    let duration = match (s.first_ts, s.last_ts) {
        (Some(a), Some(b)) => format!(
            "{} ({} to {})",
            super::ladder::since(b.saturating_sub(a)),
            utc(a),
            utc(b)
        ),
        _ => "-".to_string(),
    };
    let servers = f.timeline.top_servers(8);
    let notes: Vec<String> = summary_details(s)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    html! {
        div class="file" id={"file-" (i + 1)} data-path=(s.path) {
            h3 { (printable(&s.path)) }
            table class="file-summary" {
                tr { th { "format" } td { (s.format) } }
                tr { th { "link types" } td { (s.link_types.join(", ")) } }
                tr { th { "frames" } td { (s.frames) " (" (s.captured_bytes) " bytes captured)" } }
                tr { th { "duration" } td { (duration) } }
                tr { th { "hosts" } td {
                    (f.timeline.hosts()) " in HTTP exchanges and connection attempts"
                    @if f.timeline.hosts_beyond > 0 { " (more than that: " (f.timeline.hosts_beyond) " not counted one by one)" }
                } }
                tr { th { "connections" } td { (s.tcp_streams) " TCP (" (s.http_streams) " with HTTP, " (s.tls.connections) " TLS), " (s.connection_attempts) " attempts" } }
                tr { th { "exchanges" } td { (s.exchanges) " (" (s.http_messages) " HTTP messages)" } }
                @if !servers.is_empty() {
                    tr { th { "busiest servers" } td {
                        @for (j, (a, n)) in servers.iter().enumerate() {
                            @if j > 0 { ", " }
                            span class="mono" { (a) } " (" (n) ")"
                        }
                    } }
                }
                tr { th { "findings" } td {
                    (f.findings)
                    @if f.suppressed > 0 { " (" (f.suppressed) " repeats suppressed)" }
                    @if f.rule_state_dropped > 0 { "; rules dropped " (f.rule_state_dropped) " items of state (tables full)" }
                } }
                tr { th { "read" } td { (printable(&s.read)) } }
                tr { th { "skipped" } td {
                    @if s.skipped.is_empty() { "nothing" }
                    @for (j, k) in s.skipped.iter().enumerate() {
                        @if j > 0 { "; " }
                        (k.count) " × " (printable(&k.reason)) " (first at frame " (k.first_frame) ")"
                    }
                } }
            }
            @if !notes.is_empty() {
                ul class="notes" {
                    @for n in &notes { li { (printable(n)) } }
                }
            }
        }
    }
}

/// `2026-12-04 12:00:00.123 UTC`.
pub fn utc(ts: TimestampNs) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let ms = ts.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, m, d) = crate::rules::kit::time::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03} UTC",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(
            utc(1_796_385_600_123_000_000),
            "2026-12-04 12:00:00.123 UTC"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
    }
}
