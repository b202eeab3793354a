//! Findings for people: one block per finding, then the summary.

use super::ladder::Ladder;
use crate::finding::{Finding, Severity, frame_ranges};
use crate::text::{fit, printable, shell_quote};
use comfy_table::{Cell, ContentArrangement, Table, presets};
use std::fmt::Write as _;

/// Wraps text at `width` columns, indenting every line.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

fn paint(s: &str, sev: Severity, color: bool) -> String {
    if !color {
        return s.to_string();
    }
    let code = match sev {
        Severity::Error => "1;31",
        Severity::Warning => "1;33",
        Severity::Info => "1;36",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// How finding blocks are written for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextStyle {
    /// ANSI colours for the severity.
    pub color: bool,
    /// ASCII instead of box-drawing characters (diagram and table).
    pub ascii: bool,
    /// A ladder diagram of the evidence.
    pub diagram: bool,
    /// The terminal's width, in columns.
    pub width: usize,
}

impl TextStyle {
    /// 80 columns, box-drawing characters, diagrams, colour as given.
    pub fn plain(color: bool) -> TextStyle {
        TextStyle {
            color,
            ascii: false,
            diagram: true,
            width: 80,
        }
    }
}

/// Whether the locale's character set is UTF-8 (`LC_ALL`, else `LC_CTYPE`, else `LANG`, as
/// the C library chooses): if not, the terminal may not show box-drawing characters.
pub fn locale_is_utf8() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// One finding as a block of text. `n` is its number for `capdiag extract --finding N`.
/// Every text of the finding is shown [`printable`]: its own escapes (colour) are the only ones
/// that reach the terminal.
pub fn finding_block(f: &Finding, n: usize, file: &str, color: bool) -> String {
    finding_block_with(f, n, file, "", &TextStyle::plain(color))
}

/// As [`finding_block`], with `extract_args` (already quoted for a shell: the run's TLS key
/// logs and `--with-keys`) added to its `capdiag extract` suggestion, written in `style`.
pub fn finding_block_with(
    f: &Finding,
    n: usize,
    file: &str,
    extract_args: &str,
    style: &TextStyle,
) -> String {
    let color = style.color;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} [{}] #{n}: {}",
        paint(&f.severity.as_str().to_uppercase(), f.severity, color),
        f.rule,
        printable(&f.title)
    );
    let streams: Vec<String> = f.streams.iter().map(u64::to_string).collect();
    let _ = writeln!(
        out,
        "  key frame {} · {} evidence frames · stream{} {}",
        f.key_frame,
        f.frames.len(),
        if f.streams.len() == 1 { "" } else { "s" },
        if streams.is_empty() {
            "-".into()
        } else {
            streams.join(", ")
        }
    );
    out.push('\n');
    out.push_str(&wrap(&printable(&f.detail), 96, "  "));
    out.push('\n');
    if style.diagram
        && let Some(l) = Ladder::of(f)
    {
        out.push_str(&l.text(style.width, style.ascii));
        out.push('\n');
    }
    let mut t = Table::new();
    t.load_style(if style.ascii {
        presets::ASCII_FULL_CONDENSED
    } else {
        presets::UTF8_FULL_CONDENSED
    })
    .set_content_arrangement(ContentArrangement::Disabled)
    .set_header(vec!["frame", "stream", "evidence"]);
    for e in &f.evidence {
        t.add_row(vec![
            Cell::new(if e.frame == f.key_frame {
                format!("{} {}", e.frame, if style.ascii { "<" } else { "◀" })
            } else {
                e.frame.to_string()
            }),
            Cell::new(e.stream.map(|s| s.to_string()).unwrap_or_default()),
            Cell::new(fit(&e.what, 110)),
        ]);
    }
    for line in t.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
    out.push_str(&wrap(
        &format!("Remediation: {}", printable(&f.remediation)),
        96,
        "  ",
    ));
    let _ = writeln!(out, "\n  Wireshark filter: {}", printable(&f.filter));
    let _ = writeln!(
        out,
        "  Extract evidence: {}",
        printable(&extract_command(f, n, file, extract_args))
    );
    out
}

/// The `capdiag extract` command that writes finding `n`'s evidence frames of `file` to a
/// capture of their own, with `extract_args` (already quoted for a shell: the run's TLS key
/// logs and `--with-keys`) added; not yet made printable.
pub fn extract_command(f: &Finding, n: usize, file: &str, extract_args: &str) -> String {
    format!(
        "capdiag extract {} -w {}-{n}.{}{extract_args} --frames {}",
        shell_quote(file),
        f.rule,
        // The secrets go in a pcapng.
        if extract_args.contains("--with-keys") {
            "pcapng"
        } else {
            "pcap"
        },
        frame_ranges(&f.frames)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("aa bb cc", 5, "> "), "> aa bb\n> cc\n");
    }
}
