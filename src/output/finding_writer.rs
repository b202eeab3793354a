//! Findings as `analyze` and `watch` print them: one writer, three styles.
//!
//! - [`Style::Text`]: a block per finding for people ([`super::findings::finding_block`]), with
//!   the summaries the command writes between them ([`FindingWriter::text`]).
//! - [`Style::Json`]: one document, `{"version": V, "findings": [...], "files": [...]}`, the
//!   findings written as they are made (`analyze --format json`).
//! - [`Style::Ndjson`]: one object per line, typed (`finding`, `drops`; the command writes the
//!   `summary` line), flushed at once (`watch --format ndjson`).
//!
//! Field names and meanings are an interface (`docs/output-schema.md`, `docs/watch.md`).

use super::findings::{TextStyle, finding_block_with};
use super::json::SCHEMA_VERSION;
use crate::capture::live::DropReport;
use crate::finding::Finding;
use serde::Serialize;
use std::io::{self, Write};

/// How findings are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Text(TextStyle),
    Json,
    Ndjson,
}

/// Where findings come from, as the output names it.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The capture whose frame numbers the findings give (`null` in NDJSON when none is).
    pub file: Option<&'a str>,
    /// The interface watched (`null` in NDJSON when a file is read).
    pub interface: Option<&'a str>,
    /// The file named in the text's `capdiag extract` suggestion.
    pub extract_from: &'a str,
    /// What the suggestion adds for TLS secrets (` --with-keys --tls-keylog KEYS`), quoted.
    pub extract_keys: &'a str,
}

/// A finding in `analyze`'s JSON: its fields and the capture it came from.
#[derive(Serialize)]
struct JsonFinding<'a> {
    file: &'a str,
    #[serde(flatten)]
    finding: &'a Finding,
}

/// A finding in `watch`'s NDJSON.
#[derive(Serialize)]
struct FindingLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    interface: Option<&'a str>,
    file: Option<&'a str>,
    /// Packets the kernel dropped while this finding's evidence was being captured (from its
    /// first evidence frame to the moment it was made): when not 0, evidence may be missing.
    drops_during_evidence: u64,
    #[serde(flatten)]
    finding: &'a Finding,
}

/// An NDJSON line of type `drops`: the kernel dropped packets (live capture only).
#[derive(Serialize)]
struct DropsLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    interface: Option<&'a str>,
    file: Option<&'a str>,
    #[serde(flatten)]
    report: DropReport,
}

pub struct FindingWriter<W: Write> {
    out: W,
    style: Style,
    /// No finding written yet (JSON separators).
    first: bool,
}

impl<W: Write> FindingWriter<W> {
    /// Starts the output (the JSON document's opening).
    pub fn start(mut out: W, style: Style) -> io::Result<FindingWriter<W>> {
        if style == Style::Json {
            write!(out, "{{\"version\":{SCHEMA_VERSION},\"findings\":[")?;
        }
        Ok(FindingWriter {
            out,
            style,
            first: true,
        })
    }

    pub fn style(&self) -> Style {
        self.style
    }

    /// Finding number `n` (its number for `capdiag extract --finding N`), of `from`; `drops`
    /// packets were lost while its evidence was captured.
    pub fn finding(
        &mut self,
        f: &Finding,
        n: usize,
        from: &Origin<'_>,
        drops: u64,
    ) -> io::Result<()> {
        match self.style {
            Style::Text(style) => {
                let mut block =
                    finding_block_with(f, n, from.extract_from, from.extract_keys, &style);
                if drops > 0 {
                    block.push_str(&format!(
                        "  warning: the kernel dropped {drops} packets while this evidence was \
                         captured; it may be incomplete (see docs/watch.md, Drops)\n"
                    ));
                }
                writeln!(self.out, "{block}")
            }
            Style::Json => {
                let sep = if self.first { "\n" } else { ",\n" };
                self.first = false;
                self.out.write_all(sep.as_bytes())?;
                serde_json::to_writer(
                    &mut self.out,
                    &JsonFinding {
                        file: from.file.unwrap_or_default(),
                        finding: f,
                    },
                )
                .map_err(io::Error::from)
            }
            Style::Ndjson => self.line(&FindingLine {
                kind: "finding",
                interface: from.interface,
                file: from.file,
                drops_during_evidence: drops,
                finding: f,
            }),
        }
    }

    /// Says that the kernel dropped packets: an NDJSON line of type `drops`, or a warning line
    /// among the findings.
    pub fn drops(&mut self, r: &DropReport, from: &Origin<'_>) -> io::Result<()> {
        match self.style {
            Style::Ndjson | Style::Json => self.line(&DropsLine {
                kind: "drops",
                interface: from.interface,
                file: from.file,
                report: *r,
            }),
            Style::Text(_) => writeln!(
                self.out,
                "capdiag: warning: the kernel dropped {} packets between frames {} and {} ({} \
                 since the start): its buffer was full. Findings with evidence there may be \
                 incomplete; raise --buffer-mib, lower --snaplen or narrow the capture with -f.\n",
                r.dropped_by_kernel, r.after_frame, r.until_frame, r.total_dropped_by_kernel
            ),
        }
    }

    /// One NDJSON line (the command's `summary` too).
    pub fn line(&mut self, v: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v).map_err(io::Error::from)?;
        self.out.write_all(b"\n")
    }

    /// Text the command writes between findings (a summary), as it is.
    pub fn text(&mut self, s: &str) -> io::Result<()> {
        self.out.write_all(s.as_bytes())
    }

    /// Ends the JSON document with the files' summaries.
    pub fn end_json(&mut self, files: &impl Serialize) -> io::Result<()> {
        self.out.write_all(b"\n],\"files\":")?;
        serde_json::to_writer(&mut self.out, files).map_err(io::Error::from)?;
        self.out.write_all(b"}\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
