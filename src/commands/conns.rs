//! `capdiag conns`: every TCP connection of captures, as Zeek's conn.log has it but with
//! Wireshark's numbers (`tcp.stream`, frames), and what it carried: HTTP with its exchange
//! count, or TLS with what its handshake showed and how it went. A connection is listed when
//! it ends (or the capture does); what is kept meanwhile is per live connection.

use super::{
    EXIT_ERROR, EXIT_OK, finish_listing, name_of, read_frames, warn_if_incomplete, write_failed,
};
use crate::cli::{ConnsArgs, OutputFormat};
use crate::engine::{Engine, Event, Sink};
use crate::flow::ConnRecord;
use crate::output::FileSummary;
use crate::output::json::JsonHttpWriter;
use crate::output::table::{ROWS_PER_TABLE, summary_text};
use crate::text::{fit, printable};
use crate::tls::{Outcome, TlsSummary, alert_name, version_name};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::io::{self, Write};

/// What the application layers said of a connection still open.
#[derive(Default)]
struct Seen {
    exchanges: u64,
    tls: Option<Box<TlsSummary>>,
}

enum Mode {
    Table(Vec<Vec<Cell>>),
    Json {
        writer: JsonHttpWriter,
        file: String,
    },
}

struct ConnsSink<'w> {
    out: &'w mut dyn Write,
    mode: Mode,
    /// By stream, until its record comes (at most one entry per live connection).
    seen: FxHashMap<u64, Seen>,
    connections: u64,
    error: Option<io::Error>,
}

/// A TLS connection as the JSON shows it.
#[derive(Serialize)]
struct JsonTls<'a> {
    client_hello_frame: Option<u64>,
    sni: Option<&'a str>,
    alpn_offered: Vec<&'a str>,
    versions_offered: Vec<String>,
    server_hello_frame: Option<u64>,
    version: Option<String>,
    cipher_suite: Option<String>,
    alpn: Option<&'a str>,
    hello_retry_request: bool,
    certificate_frame: Option<u64>,
    certificates: &'a [crate::tls::CertInfo],
    /// Certificates of the chain not read (not DER, or past the first eight).
    certificates_not_read: usize,
    alerts: Vec<JsonAlert>,
    outcome: Outcome,
    outcome_frame: Option<u64>,
    client_encrypted_records: u64,
    server_encrypted_records: u64,
    /// First line of a side that answered in plaintext, and its frame.
    plaintext: Option<(u64, &'a str)>,
    /// How decrypting it went, when the run had secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    decryption: Option<&'a crate::tls::Decryption>,
}

#[derive(Serialize)]
struct JsonAlert {
    frame: u64,
    from: &'static str,
    level: Option<u8>,
    description: Option<String>,
    encrypted: bool,
}

impl<'a> JsonTls<'a> {
    fn new(t: &'a TlsSummary) -> JsonTls<'a> {
        let ch = t.client_hello.as_ref();
        let sh = t.server_hello.as_ref();
        JsonTls {
            client_hello_frame: ch.map(|h| h.frame),
            sni: ch.and_then(|h| h.sni.as_deref()),
            alpn_offered: ch
                .map(|h| h.alpn.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            versions_offered: ch
                .map(|h| h.versions.iter().map(|&v| version_name(v)).collect())
                .unwrap_or_default(),
            server_hello_frame: sh.map(|h| h.frame),
            version: sh.map(|h| version_name(h.version)),
            cipher_suite: sh.map(|h| suite_name(h.cipher_suite)),
            alpn: sh
                .and_then(|h| h.alpn.as_deref())
                .or(t.decryption.as_ref().and_then(|d| d.alpn.as_deref())),
            hello_retry_request: t.hello_retry_request,
            certificate_frame: t.certificate_frame,
            certificates: &t.certificates,
            certificates_not_read: t.certificates_not_read,
            alerts: t
                .alerts
                .iter()
                .map(|a| JsonAlert {
                    frame: a.frame,
                    from: if a.from_client { "client" } else { "server" },
                    level: a.level,
                    description: a.description.map(alert_name),
                    encrypted: a.encrypted,
                })
                .collect(),
            outcome: t.outcome,
            outcome_frame: t.outcome_frame,
            client_encrypted_records: t.client_side.encrypted_records,
            server_encrypted_records: t.server_side.encrypted_records,
            plaintext: t.plaintext.as_ref().map(|(f, s)| (*f, s.as_str())),
            decryption: t.decryption.as_ref(),
        }
    }
}

/// A connection as the JSON shows it.
#[derive(Serialize)]
struct JsonConn<'a> {
    file: &'a str,
    stream: u64,
    first_frame: u64,
    last_frame: u64,
    client: String,
    server: String,
    state: &'static str,
    history: &'a str,
    duration: f64,
    client_packets: u64,
    server_packets: u64,
    client_bytes: u64,
    server_bytes: u64,
    client_retransmissions: u64,
    server_retransmissions: u64,
    missed_bytes: u64,
    service: Option<&'static str>,
    resumed: bool,
    http_exchanges: u64,
    tls: Option<JsonTls<'a>>,
}

fn suite_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| format!("0x{id:04x}"))
}

fn duration(c: &ConnRecord) -> f64 {
    c.last_ts.saturating_sub(c.first_ts) as f64 / 1e9
}

/// The application column: what the connection carried, and for TLS how it went.
fn app_text(c: &ConnRecord, seen: &Seen) -> String {
    if let Some(t) = &seen.tls {
        let mut s = String::from("TLS");
        if let Some(h) = &t.server_hello {
            s.push_str(&format!(
                " {}",
                version_name(h.version).trim_start_matches("TLS ")
            ));
        }
        if let Some(sni) = t.client_hello.as_ref().and_then(|h| h.sni.as_deref()) {
            s.push_str(&format!(" {}", printable(sni)));
        }
        let alpn = t.server_hello.as_ref().and_then(|h| h.alpn.as_deref());
        let alpn = alpn.or(t.decryption.as_ref().and_then(|d| d.alpn.as_deref()));
        if let Some(a) = alpn {
            s.push_str(&format!(" [{}]", printable(a)));
        }
        if t.outcome == Outcome::NotTls
            && let Some((f, line)) = &t.plaintext
        {
            s.push_str(&format!(
                ": answered in plaintext \"{}\" (frame {f})",
                fit(&printable(line), 40)
            ));
            if seen.exchanges > 0 {
                s.push_str(&format!("; HTTP {}", exchanges(seen.exchanges)));
            }
            return s;
        }
        s.push_str(&format!(": {}", t.outcome.as_str()));
        if let Some(a) = t
            .alerts
            .iter()
            .find(|a| a.description.is_some_and(|d| d != 0))
        {
            let d = a.description.map(alert_name).unwrap_or_default();
            s.push_str(&format!(" ({d}, frame {})", a.frame));
        } else if let Some((f, line)) = &t.plaintext {
            s.push_str(&format!(
                " (answered \"{}\", frame {f})",
                fit(&printable(line), 40)
            ));
        }
        if let Some(leaf) = t.certificates.first() {
            s.push_str(&format!("; cert {}", fit(&printable(&leaf.subject), 40)));
        }
        if let Some(d) = &t.decryption {
            s.push_str(&format!("; {}", d.status.as_str()));
            if d.status == crate::tls::DecryptStatus::UnsupportedSuite
                && let Some(h) = &t.server_hello
            {
                s.push_str(&format!(
                    " 0x{:04x} ({})",
                    h.cipher_suite,
                    crate::tls::crypto::unsupported_kind(h.cipher_suite, h.version)
                ));
            }
            if let Some(f) = d.failed_frame {
                s.push_str(&format!(" at frame {f}"));
            }
            if let (Some(f), Some(why)) = (d.stopped_frame, d.stopped) {
                s.push_str(&format!(" (stopped at frame {f}: {why})"));
            }
            if d.early_data_records > 0 {
                s.push_str(&format!(
                    "; {} early-data record{} not decrypted",
                    d.early_data_records,
                    if d.early_data_records == 1 { "" } else { "s" }
                ));
            }
            if d.http2 {
                s.push_str("; HTTP/2, not parsed");
            }
        }
        if seen.exchanges > 0 {
            s.push_str(&format!("; HTTP {}", exchanges(seen.exchanges)));
        }
        return s;
    }
    if seen.exchanges > 0 {
        return format!("HTTP {}", exchanges(seen.exchanges));
    }
    c.service.unwrap_or("-").to_string()
}

fn exchanges(n: u64) -> String {
    if n == 1 {
        "1 exchange".into()
    } else {
        format!("{n} exchanges")
    }
}

fn table() -> Table {
    let mut t = crate::output::table::table(&[
        "stream",
        "frames",
        "client → server",
        "state",
        "duration",
        "packets →/←",
        "bytes →/←",
        "retrans",
        "application",
    ]);
    t.set_content_arrangement(ContentArrangement::Disabled);
    for i in [0, 4, 5, 6, 7] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

impl ConnsSink<'_> {
    fn flush_rows(&mut self) {
        if let Mode::Table(rows) = &mut self.mode {
            if rows.is_empty() || self.error.is_some() {
                return;
            }
            let mut t = table();
            for r in rows.drain(..) {
                t.add_row(r);
            }
            if let Err(e) = writeln!(self.out, "{t}") {
                self.error = Some(e);
            }
        }
    }

    fn record(&mut self, c: &ConnRecord) {
        let seen = self.seen.remove(&c.stream).unwrap_or_default();
        self.connections += 1;
        match &mut self.mode {
            Mode::Table(rows) => {
                rows.push(vec![
                    Cell::new(c.stream),
                    Cell::new(format!("{}–{}", c.first_frame, c.last_frame)),
                    Cell::new(format!("{} → {}", c.orig, c.resp)),
                    Cell::new(c.conn_state.as_str()),
                    Cell::new(format!("{:.3} s", duration(c))),
                    Cell::new(format!("{}/{}", c.orig_side.packets, c.resp_side.packets)),
                    Cell::new(format!("{}/{}", c.orig_side.bytes, c.resp_side.bytes)),
                    Cell::new(
                        c.orig_side.retransmitted_segments + c.resp_side.retransmitted_segments,
                    ),
                    Cell::new(app_text(c, &seen)),
                ]);
                if rows.len() >= ROWS_PER_TABLE {
                    self.flush_rows();
                }
            }
            Mode::Json { writer, file } => {
                let j = JsonConn {
                    file,
                    stream: c.stream,
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                    client: c.orig.to_string(),
                    server: c.resp.to_string(),
                    state: c.conn_state.as_str(),
                    history: &c.history,
                    duration: duration(c),
                    client_packets: c.orig_side.packets,
                    server_packets: c.resp_side.packets,
                    client_bytes: c.orig_side.bytes,
                    server_bytes: c.resp_side.bytes,
                    client_retransmissions: c.orig_side.retransmitted_segments,
                    server_retransmissions: c.resp_side.retransmitted_segments,
                    missed_bytes: c.orig_side.missed_bytes + c.resp_side.missed_bytes,
                    service: c.service,
                    resumed: c.resumed,
                    http_exchanges: seen.exchanges,
                    tls: seen.tls.as_deref().map(JsonTls::new),
                };
                if let Err(e) = writer.item(self.out, &j) {
                    self.error = Some(e);
                }
            }
        }
    }
}

impl Sink for ConnsSink<'_> {
    fn wants_more(&self) -> bool {
        self.error.is_none()
    }

    fn event(&mut self, ev: Event<'_>) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Exchange(ex) => self.seen.entry(ex.stream).or_default().exchanges += 1,
            Event::Tls(t) => {
                self.seen.entry(t.stream).or_default().tls = Some(Box::new(t.clone()));
            }
            Event::ConnEnd(c) => self.record(c),
            _ => {}
        }
    }

    fn wakes_at(&self) -> Option<crate::capture::TimestampNs> {
        None
    }
}

/// `capdiag conns`.
pub fn conns(args: &ConnsArgs) -> u8 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut limits = args.limits.to_limits();
    limits.flow.records = true;
    let Some(keys) = super::tls_keys(&args.tls, false) else {
        return EXIT_ERROR;
    };
    let mut code = EXIT_OK;
    let mut summaries = Vec::new();
    let mut json = match args.format {
        OutputFormat::Json => match JsonHttpWriter::start_list(&mut out, "connections") {
            Ok(w) => Some(w),
            Err(_) => return EXIT_OK,
        },
        OutputFormat::Table => None,
    };
    for path in &args.files {
        let name = name_of(path);
        let Some(mut reader) = super::open_with_keys(path, &name, &keys) else {
            code = EXIT_ERROR;
            continue;
        };
        let mut engine = Engine::new(limits);
        engine.set_tls_keys(std::sync::Arc::clone(&keys));
        let mode = match json.take() {
            Some(writer) => Mode::Json {
                writer,
                file: name.clone(),
            },
            None => Mode::Table(Vec::new()),
        };
        let mut sink = ConnsSink {
            out: &mut out,
            mode,
            seen: FxHashMap::default(),
            connections: 0,
            error: None,
        };
        let end = read_frames(&mut reader, args.threads, &mut engine, &mut sink, |_| true);
        engine.finish(&mut sink);
        super::capture_done(&keys);
        sink.flush_rows();
        let summary = FileSummary::new(
            &name,
            reader.format(),
            reader.link_types(),
            engine.stats(),
            &end,
        );
        let mut error = sink.error.take();
        let listed = sink.connections;
        if let Mode::Json { writer, .. } = sink.mode {
            json = Some(writer);
        } else if error.is_none() {
            let r = if listed == 0 {
                writeln!(out, "(no TCP connections)")
            } else {
                Ok(())
            };
            error = r
                .and_then(|()| write!(out, "{}", summary_text(&summary)))
                .err();
        }
        if let Some(e) = error {
            return write_failed(&e, code);
        }
        warn_if_incomplete(&name, &end);
        summaries.push(summary);
    }
    finish_listing(&mut out, json, &summaries, code)
}
