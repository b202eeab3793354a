//! Tables for people (comfy-table).

use super::FileSummary;
use crate::http::{Exchange, Message};
use crate::text::{fit, printable, printable_bytes};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use std::fmt::Write as _;

/// Rows per table: a long listing is printed as consecutive tables, so memory stays bounded.
pub const ROWS_PER_TABLE: usize = 5000;
const URI_WIDTH: usize = 60;
const HOST_WIDTH: usize = 48;

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
}

fn frame_cell(m: Option<&Message>) -> String {
    match m {
        Some(m) if m.complete => m.frame.to_string(),
        Some(m) => format!("{}*", m.frame),
        None => "-".into(),
    }
}

/// One row of the `http` listing.
pub fn exchange_row(ex: &Exchange) -> Vec<Cell> {
    let req = ex.request.as_deref();
    let resp = ex.response.as_deref();
    let host = req
        .and_then(|m| m.header("host"))
        .map(|h| fit(&printable_bytes(h), HOST_WIDTH))
        .unwrap_or_default();
    let uri = req
        .and_then(|m| m.uri())
        .map(|u| fit(&printable_bytes(u), URI_WIDTH))
        .unwrap_or_default();
    let mut status = String::new();
    for i in &ex.interim {
        if let Some(s) = i.status() {
            let _ = write!(status, "{s} ");
        }
    }
    match resp.and_then(Message::status) {
        Some(s) => {
            let _ = write!(status, "{s}");
        }
        None => status.push('-'),
    }
    let ctype = resp
        .and_then(|m| m.header_str("content-type"))
        .map(|c| fit(&c, 32))
        .unwrap_or_default();
    let body = resp.map(|m| human_bytes(m.body.length)).unwrap_or_default();
    let duration = ex
        .duration_ns()
        .map(|d| format!("{:.1} ms", d as f64 / 1e6))
        .unwrap_or_default();
    vec![
        Cell::new(ex.stream).set_alignment(CellAlignment::Right),
        Cell::new(frame_cell(req)).set_alignment(CellAlignment::Right),
        Cell::new(frame_cell(resp)).set_alignment(CellAlignment::Right),
        Cell::new(format!("{} → {}", ex.client, ex.server)),
        Cell::new(printable(req.and_then(Message::method).unwrap_or("-"))),
        Cell::new(host),
        Cell::new(uri),
        Cell::new(status),
        Cell::new(ctype),
        Cell::new(body).set_alignment(CellAlignment::Right),
        Cell::new(duration).set_alignment(CellAlignment::Right),
    ]
}

/// A table in capdiag's style with these column headers.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

pub fn exchange_table() -> Table {
    let mut t = table(&[
        "stream",
        "req",
        "resp",
        "client → server",
        "method",
        "host",
        "uri",
        "status",
        "content type",
        "body",
        "time",
    ]);
    t.set_content_arrangement(ContentArrangement::Disabled);
    t
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The summary printed after a listing.
pub fn summary_text(s: &FileSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}, {}; {}, {}, {} ({} with HTTP), {}, {}",
        printable(&s.path),
        s.format,
        s.link_types.join(", "),
        plural(s.frames, "frame"),
        human_bytes(s.captured_bytes),
        plural(s.tcp_streams, "TCP stream"),
        s.http_streams,
        plural(s.exchanges, "exchange"),
        plural(s.http_messages, "HTTP message"),
    );
    if s.read != "complete" {
        let _ = writeln!(out, "  warning: {}", printable(&s.read));
    }
    out.push_str(&summary_details(s));
    out
}

/// The indented lines of [`summary_text`] after its first: what TCP saw, what was skipped,
/// the limits hit, what HTTP lost (empty when there is nothing to say).
pub fn summary_details(s: &FileSummary) -> String {
    let mut out = String::new();
    let t = &s.tcp;
    if t.duplicate_frames + t.retransmitted_segments + t.out_of_order_segments + t.gap_bytes > 0 {
        let _ = writeln!(
            out,
            "  tcp: {} retransmitted, {} out of order, {} duplicate frames (same packet captured twice), {} bytes never captured",
            t.retransmitted_segments, t.out_of_order_segments, t.duplicate_frames, t.gap_bytes
        );
    }
    let tls = &s.tls;
    if tls.connections > 0 {
        let _ = writeln!(
            out,
            "  tls: {}: {} established, {} rejected by the client, {} by the server, {} handshake only (no data), {} answered in plaintext, {} cut short",
            plural(tls.connections, "connection"),
            tls.established,
            tls.rejected_by_client,
            tls.rejected_by_server,
            tls.handshake_only,
            tls.not_tls,
            tls.cut
        );
        let k = &s.tls_keys;
        let tried = tls.decrypted + tls.no_key + tls.unsupported_suite + tls.decryption_failed;
        if k.files + k.embedded == 0 {
            let _ = writeln!(
                out,
                "  tls: not decrypted: no key log given (--tls-keylog FILE, or a pcapng with its secrets)"
            );
        } else if tried > 0 {
            let _ = writeln!(
                out,
                "  tls decryption: {} decrypted, {} without a key in the key log, {} with a cipher suite not decrypted (CBC, CCM), {} failed (a record did not authenticate){}",
                tls.decrypted,
                tls.no_key,
                tls.unsupported_suite,
                tls.decryption_failed,
                if tls.http2 > 0 {
                    format!("; {} carried HTTP/2, not parsed", tls.http2)
                } else {
                    String::new()
                }
            );
        }
    }
    if s.snaplen_truncated_frames > 0 {
        let _ = writeln!(
            out,
            "  {} frames were cut short by the snap length (their missing bytes count as never captured)",
            s.snaplen_truncated_frames
        );
    }
    for sk in &s.skipped {
        let _ = writeln!(
            out,
            "  skipped {} frames: {} (first: frame {})",
            sk.count,
            printable(&sk.reason),
            sk.first_frame
        );
    }
    for (what, n) in s.limits_hit() {
        let _ = writeln!(out, "  limit hit {n} times: {what}");
    }
    let lost = t.http_bad_headers + t.http_heads_lost;
    if lost > 0 {
        let _ = writeln!(
            out,
            "  http: {} header blocks unparsable or lost in gaps, {} resynchronisations",
            lost, t.http_resyncs
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
