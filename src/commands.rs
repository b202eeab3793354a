//! What each subcommand does: open inputs, run the engine, render.

use crate::capture::file::{CaptureReader, OpenError};
use crate::cli::{HttpArgs, OutputFormat};
use crate::engine::{Engine, Sink};
use crate::http::Exchange;
use crate::output::FileSummary;
use crate::output::json::{JsonExchange, JsonHttpWriter};
use crate::output::table::{ROWS_PER_TABLE, exchange_row, exchange_table, summary_text};
use comfy_table::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Exit codes (ripgrep's convention).
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 2;

/// Opens a capture by path; `-` is standard input.
pub fn open_capture(path: &Path) -> Result<CaptureReader, OpenError> {
    if path.as_os_str() == "-" {
        return CaptureReader::new(io::stdin());
    }
    if path.is_dir() {
        return Err(OpenError::Io(io::Error::other("is a directory")));
    }
    let file = File::open(path)?;
    CaptureReader::new(file)
}

/// Opens a capture, or reports why it cannot be read (named as the user gave it).
fn open_or_report(path: &Path, name: &str) -> Option<CaptureReader> {
    match open_capture(path) {
        Ok(r) => Some(r),
        Err(e) => {
            report_error(name, &e);
            None
        }
    }
}

/// A line on standard error. A standard error that cannot be written (closed, or a full disk)
/// is no reason to stop, nor to panic as `eprintln!` would. The line is shown
/// [`printable`](crate::text::printable): file and interface names, filters and errors that
/// quote input cannot drive the terminal.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::text::printable(&line));
    }};
}

/// A path as capdiag names it in its output: as the user gave it, with bytes that are not
/// UTF-8 as `\xNN` ([`crate::text::lossless`]; printers escape it further for a terminal).
pub fn name_of(path: &Path) -> String {
    crate::text::lossless(path.as_os_str().as_encoded_bytes())
}

/// Says on standard error how reading stopped when the file did not end cleanly (cut off,
/// damaged, read error); the records before that point were analysed.
fn warn_if_incomplete(name: &str, end: &crate::capture::file::ReadEnd) {
    if *end != crate::capture::file::ReadEnd::Complete {
        say!("capdiag: warning: {name}: {end}");
    }
}

/// Prints an error once, the way every capdiag error looks.
pub fn report_error(what: &str, err: &dyn std::fmt::Display) {
    say!("capdiag: {what}: {err}");
}

enum Mode {
    Table(Vec<Vec<Cell>>),
    Json {
        writer: JsonHttpWriter,
        file: String,
        body_limit: Option<usize>,
    },
}

struct HttpSink<'w> {
    out: &'w mut dyn Write,
    mode: Mode,
    error: Option<io::Error>,
}

impl HttpSink<'_> {
    fn flush_rows(&mut self) {
        if let Mode::Table(rows) = &mut self.mode {
            if rows.is_empty() || self.error.is_some() {
                return;
            }
            let mut t = exchange_table();
            for r in rows.drain(..) {
                t.add_row(r);
            }
            if let Err(e) = writeln!(self.out, "{t}") {
                self.error = Some(e);
            }
        }
    }
}

impl Sink for HttpSink<'_> {
    fn wants_more(&self) -> bool {
        self.error.is_none()
    }

    fn exchange(&mut self, ex: &Exchange) {
        if self.error.is_some() {
            return;
        }
        match &mut self.mode {
            Mode::Table(rows) => {
                rows.push(exchange_row(ex));
                if rows.len() >= ROWS_PER_TABLE {
                    self.flush_rows();
                }
            }
            Mode::Json {
                writer,
                file,
                body_limit,
            } => {
                if let Err(e) = writer.exchange(self.out, &JsonExchange::new(file, ex, *body_limit))
                {
                    self.error = Some(e);
                }
            }
        }
    }
}

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Standard input (`-`) can be read once: named twice, the second would read nothing. Says so
/// when it is.
fn stdin_at_most_once(files: &[std::path::PathBuf]) -> bool {
    let once = files.iter().filter(|f| f.as_os_str() == "-").count() <= 1;
    if !once {
        report_error("-", &"standard input can be read only once; name it once");
    }
    once
}

/// Writes `text` to standard output: a closed pipe ends quietly, another failure (a full
/// disk) is an error.
fn print_text(text: &str) -> u8 {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if !is_broken_pipe(&e) => {
            report_error("writing output", &e);
            EXIT_ERROR
        }
        _ => EXIT_OK,
    }
}

/// `capdiag http`.
pub fn http(args: &HttpArgs) -> u8 {
    if !stdin_at_most_once(&args.files) {
        return EXIT_ERROR;
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut limits = args.limits.to_limits();
    if args.show_body {
        limits.app.http.bodies = crate::http::BodyPolicy::All;
    }
    let mut code = EXIT_OK;
    let mut summaries = Vec::new();
    let body_limit = args.show_body.then_some(args.limits.body_limit);
    let mut json = match args.format {
        OutputFormat::Json => match JsonHttpWriter::start(&mut out) {
            Ok(w) => Some(w),
            Err(_) => return EXIT_OK,
        },
        OutputFormat::Table => None,
    };
    for path in &args.files {
        let name = name_of(path);
        let Some(mut reader) = open_or_report(path, &name) else {
            code = EXIT_ERROR;
            continue;
        };
        let mut engine = Engine::new(limits);
        let mode = match json.take() {
            Some(writer) => Mode::Json {
                writer,
                file: name.clone(),
                body_limit,
            },
            None => Mode::Table(Vec::new()),
        };
        let mut sink = HttpSink {
            out: &mut out,
            mode,
            error: None,
        };
        let end = read_frames(&mut reader, args.threads, &mut engine, &mut sink, |_| true);
        engine.finish(&mut sink);
        sink.flush_rows();
        let summary = FileSummary::new(
            &name,
            reader.format(),
            reader.link_types(),
            engine.stats(),
            &end,
        );
        let mut error = sink.error.take();
        if let Mode::Json { writer, .. } = sink.mode {
            json = Some(writer);
        } else if error.is_none() {
            let r = if engine.stats().exchanges == 0 {
                writeln!(out, "(no HTTP exchanges)")
            } else {
                Ok(())
            };
            error = r
                .and_then(|()| write!(out, "{}", summary_text(&summary)))
                .err();
        }
        if let Some(e) = error {
            if is_broken_pipe(&e) {
                return code;
            }
            report_error("writing output", &e);
            return EXIT_ERROR;
        }
        warn_if_incomplete(&name, &end);
        summaries.push(summary);
    }
    let result = match json {
        Some(w) => w.finish(&mut out, &summaries),
        None => out.flush(),
    };
    if let Err(e) = result
        && !is_broken_pipe(&e)
    {
        report_error("writing output", &e);
        return EXIT_ERROR;
    }
    code
}

/// A finding as JSON: the finding's fields plus the capture it came from.
#[derive(serde::Serialize)]
struct JsonFinding<'a> {
    file: &'a str,
    #[serde(flatten)]
    finding: &'a crate::finding::Finding,
}

#[derive(serde::Serialize)]
struct AnalyzeFileSummary {
    #[serde(flatten)]
    summary: FileSummary,
    findings: usize,
    /// Items rules dropped because their tables were full.
    rule_state_dropped: u64,
}

fn use_color() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A progress bar on standard error for a long offline run: only on a terminal, only for a
/// file whose size is known, and only with human output.
pub fn progress_bar(path: &Path, human: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !human || !io::stderr().is_terminal() || path.as_os_str() == "-" {
        return None;
    }
    let size = std::fs::metadata(path).ok()?.len();
    if size < 64 * 1024 * 1024 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec}, {eta} left",
    )
    .ok()?;
    bar.set_style(style.progress_chars("=> "));
    Some(bar)
}

/// Runs every frame of the capture through `engine`, calling `after` after each; reading
/// stops after a frame when `after` or the sink wants no more (their output has gone). With
/// `threads` 2 the file is read and each frame prepared for the engine (decoded, its HTTP
/// header block parsed) on a second thread; the results are the same.
fn read_frames(
    reader: &mut CaptureReader,
    threads: u8,
    engine: &mut Engine,
    sink: &mut dyn crate::engine::Sink,
    mut after: impl FnMut(&crate::capture::Frame<'_>) -> bool,
) -> crate::capture::file::ReadEnd {
    if threads > 1 {
        let preparer = engine.preparer();
        reader.for_each_frame_prefetched_while(
            |fr, store| preparer.prepare(fr, store),
            |fr, p, store| {
                engine.frame_prepared(fr, p, store, sink);
                after(fr) && sink.wants_more()
            },
        )
    } else {
        reader.for_each_frame_while(|fr| {
            engine.frame(fr, sink);
            after(fr) && sink.wants_more()
        })
    }
}

/// Runs the rules over one capture, calling `on_finding` as findings are made.
pub fn run_rules(
    reader: &mut CaptureReader,
    threads: u8,
    limits: crate::engine::Limits,
    only: &[String],
    on_finding: &mut dyn FnMut(crate::finding::Finding),
    progress: Option<&indicatif::ProgressBar>,
    go_on: &dyn Fn() -> bool,
) -> Result<(crate::capture::file::ReadEnd, Engine, u64), String> {
    let rules = crate::rules::instantiate(only)?;
    let mut engine = Engine::new(limits);
    let mut set = crate::rules::RuleSet::new(rules, on_finding);
    let mut read = 0u64;
    let end = read_frames(reader, threads, &mut engine, &mut set, |f| {
        if let Some(p) = progress {
            // Record header plus data: close to the bytes of the file read.
            read += f.data.len() as u64 + 16;
            if f.number % 65_536 == 0 {
                p.set_position(read);
            }
        }
        go_on()
    });
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    engine.finish(&mut set);
    let dropped = set.state_dropped();
    Ok((end, engine, dropped))
}

/// `capdiag analyze`.
pub fn analyze(args: &crate::cli::AnalyzeArgs) -> u8 {
    if !stdin_at_most_once(&args.files) {
        return EXIT_ERROR;
    }
    use crate::finding::Severity;
    use crate::output::findings::finding_block;
    if let Err(e) = crate::rules::instantiate(&args.rule_args.rules) {
        report_error("--rules", &e);
        return EXIT_ERROR;
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let color = use_color();
    let json = args.format == OutputFormat::Json;
    let limits = args.limits.to_limits();
    let mut code = EXIT_OK;
    let mut worst: Option<Severity> = None;
    let mut summaries = Vec::new();
    let mut first_json = true;
    let mut io_error: Option<io::Error> = None;
    // Set when the output has gone: reading stops.
    let output_gone = std::cell::Cell::new(false);
    if json {
        if let Err(e) = write!(out, "{{\"version\":1,\"findings\":[") {
            io_error = Some(e);
        }
    }
    for path in &args.files {
        if io_error.is_some() {
            // The output has gone: nobody reads what the other files would give.
            break;
        }
        let name = name_of(path);
        let Some(mut reader) = open_or_report(path, &name) else {
            code = EXIT_ERROR;
            continue;
        };
        let mut n = 0usize;
        let mut on_finding = |f: crate::finding::Finding| {
            n += 1;
            worst = worst.max(Some(f.severity));
            if io_error.is_some() {
                return;
            }
            let r = if json {
                let sep = if first_json { "\n" } else { ",\n" };
                first_json = false;
                out.write_all(sep.as_bytes()).and_then(|()| {
                    serde_json::to_writer(
                        &mut out,
                        &JsonFinding {
                            file: &name,
                            finding: &f,
                        },
                    )
                    .map_err(io::Error::from)
                })
            } else {
                writeln!(out, "{}", finding_block(&f, n, &name, color))
            };
            if let Err(e) = r {
                io_error = Some(e);
                output_gone.set(true);
            }
        };
        let bar = progress_bar(path, !json);
        let (end, engine, dropped) = match run_rules(
            &mut reader,
            args.threads,
            limits,
            &args.rule_args.rules,
            &mut on_finding,
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
        if !json && io_error.is_none() {
            let mut text = summary_text(&summary);
            if dropped > 0 {
                text.push_str(&format!(
                    "  rules: {dropped} items dropped from full rule tables\n"
                ));
            }
            let r = write!(out, "{text}").and_then(|()| writeln!(out, "{}\n", count_line_n(n)));
            if let Err(e) = r {
                io_error = Some(e);
            }
        }
        warn_if_incomplete(&name, &end);
        summaries.push(AnalyzeFileSummary {
            summary,
            findings: n,
            rule_state_dropped: dropped,
        });
    }
    if json && io_error.is_none() {
        let r = out
            .write_all(b"\n],\"files\":")
            .and_then(|()| serde_json::to_writer(&mut out, &summaries).map_err(io::Error::from))
            .and_then(|()| out.write_all(b"}\n"));
        if let Err(e) = r {
            io_error = Some(e);
        }
    }
    if io_error.is_none() {
        if let Err(e) = out.flush() {
            io_error = Some(e);
        }
    }
    if let Some(e) = io_error {
        if !is_broken_pipe(&e) {
            report_error("writing output", &e);
            return EXIT_ERROR;
        }
    }
    if code == EXIT_ERROR {
        return EXIT_ERROR;
    }
    match (fail_threshold(args.rule_args.fail_on), worst) {
        (Some(t), Some(w)) if w >= t => EXIT_FINDINGS,
        _ => EXIT_OK,
    }
}

fn count_line_n(n: usize) -> String {
    match n {
        0 => "no findings".to_string(),
        1 => "1 finding".to_string(),
        n => format!("{n} findings"),
    }
}

/// Exit code when findings at or above `--fail-on` were made.
pub const EXIT_FINDINGS: u8 = 1;

/// `capdiag rules`.
pub fn rules() -> u8 {
    let mut t = crate::output::table::table(&["rule", "severity", "what it detects"]);
    for r in crate::rules::RULES {
        t.add_row(vec![r.id, r.severity.as_str(), r.title]);
    }
    print_text(&format!(
        "{t}\n`capdiag explain ID` prints a rule's page.\n"
    ))
}

/// `capdiag explain ID`.
pub fn explain(id: &str) -> u8 {
    match crate::rules::RULES.iter().find(|r| r.id == id) {
        Some(r) => print_text(r.doc),
        None => {
            let known: Vec<&str> = crate::rules::RULES.iter().map(|r| r.id).collect();
            report_error(
                "explain",
                &format!("unknown rule '{id}' (rules: {})", known.join(", ")),
            );
            EXIT_ERROR
        }
    }
}

/// `capdiag extract`.
pub fn extract(args: &crate::cli::ExtractArgs) -> u8 {
    use crate::capture::write::parse_frame_list;
    let name = name_of(&args.file);
    if args.file.as_os_str() == "-" && args.finding.is_some() {
        report_error(
            "extract",
            &"--finding reads the capture twice, so it needs a file, not standard input",
        );
        return EXIT_ERROR;
    }
    // Which frames to keep.
    let ranges: Option<Vec<(u64, u64)>> = match (&args.frames, args.finding) {
        (Some(list), _) => match parse_frame_list(list) {
            Ok(r) => Some(r),
            Err(e) => {
                report_error("--frames", &e);
                return EXIT_ERROR;
            }
        },
        (None, Some(n)) => {
            let Some(mut reader) = open_or_report(&args.file, &name) else {
                return EXIT_ERROR;
            };
            let mut found = Vec::new();
            let mut keep = |f: crate::finding::Finding| found.push(f);
            // One thread: what is wanted is a finding's frames, the same either way, before
            // the capture is read a second time to copy them.
            if let Err(e) = run_rules(
                &mut reader,
                1,
                args.limits.to_limits(),
                &[],
                &mut keep,
                None,
                &|| true,
            ) {
                report_error("extract", &e);
                return EXIT_ERROR;
            }
            match n.checked_sub(1).and_then(|i| found.get(i)) {
                Some(f) => Some(f.frames.iter().map(|&x| (x, x)).collect()),
                None => {
                    report_error(
                        "--finding",
                        &format!(
                            "{name} has {} finding{}; there is no #{n}",
                            found.len(),
                            if found.len() == 1 { "" } else { "s" }
                        ),
                    );
                    return EXIT_ERROR;
                }
            }
        }
        (None, None) => None,
    };
    let Some(mut reader) = open_or_report(&args.file, &name) else {
        return EXIT_ERROR;
    };
    if same_file(&args.file, &args.out) {
        report_error(
            "-w",
            &format!(
                "{} is the capture being read; write to another file",
                name_of(&args.out)
            ),
        );
        return EXIT_ERROR;
    }
    let file = match File::create(&args.out) {
        Ok(f) => io::BufWriter::new(f),
        Err(e) => {
            report_error(&name_of(&args.out), &e);
            return EXIT_ERROR;
        }
    };
    extract_frames(
        &mut reader,
        file,
        ranges.as_deref(),
        args.stream,
        args.limits.to_limits(),
        &name,
        &args.out,
    )
}

/// Whether `a` and `b` name the same existing file (through links too).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn extract_frames(
    reader: &mut CaptureReader,
    file: io::BufWriter<File>,
    ranges: Option<&[(u64, u64)]>,
    stream: Option<u64>,
    limits: crate::engine::Limits,
    name: &str,
    out_path: &Path,
) -> u8 {
    use crate::capture::write::CaptureWriter;
    let pcap_ns = match reader.format() {
        crate::capture::file::Format::Pcap { nanosecond, .. } => Some(nanosecond),
        crate::capture::file::Format::PcapNg => None,
    };
    let mut file = Some(file);
    let mut writer: Option<CaptureWriter<io::BufWriter<File>>> = None;
    let mut error: Option<io::Error> = None;
    let mut written = 0u64;
    // Frames asked for that are not packets (pcapng records of other kinds): not written.
    let mut not_packets = crate::engine::Tally::default();
    // Frames from before 1970, which a pcapng file cannot date: written at 1970-01-01.
    let mut before_1970 = crate::engine::Tally::default();
    let mut engine = stream.map(|_| Engine::new(limits));
    struct Nothing;
    impl Sink for Nothing {
        fn exchange(&mut self, _: &Exchange) {}
    }
    let end = reader.for_each_frame(|f| {
        let keep = match (ranges, stream, engine.as_mut()) {
            (Some(r), _, _) => r.iter().any(|(a, b)| (*a..=*b).contains(&f.number)),
            (None, Some(s), Some(e)) => e.frame(f, &mut Nothing) == Some(s),
            _ => false,
        };
        if !keep || error.is_some() {
            return;
        }
        if f.link_type.record_kind().is_some() {
            not_packets.add(f.number);
            return;
        }
        if writer.is_none() {
            if let Some(out) = file.take() {
                let w = match pcap_ns {
                    Some(ns) => CaptureWriter::pcap(out, f.link_type, ns),
                    None => CaptureWriter::pcapng(out),
                };
                match w {
                    Ok(w) => writer = Some(w),
                    Err(e) => error = Some(e),
                }
            }
        }
        if let Some(w) = writer.as_mut() {
            if f.ts < 0 && matches!(w, CaptureWriter::PcapNg { .. }) {
                before_1970.add(f.number);
            }
            match w.write(f) {
                Ok(()) => written += 1,
                Err(e) => error = Some(e),
            }
        }
    });
    let finish = match writer {
        Some(w) => w.finish().map(|_| ()),
        None => match file.take() {
            // Nothing matched: still leave a valid, empty capture.
            Some(out) => CaptureWriter::pcapng(out)
                .and_then(|w| w.finish())
                .map(|_| ()),
            None => Ok(()),
        },
    };
    if let Some(e) = error.or(finish.err()) {
        report_error(&name_of(out_path), &e);
        return EXIT_ERROR;
    }
    warn_if_incomplete(name, &end);
    say!(
        "capdiag: wrote {written} frame{} to {}",
        if written == 1 { "" } else { "s" },
        name_of(out_path)
    );
    if not_packets.count > 0 {
        let one = not_packets.count == 1;
        say!(
            "capdiag: warning: {} of the frames asked for {} not packets (pcapng journal \
             entries, custom blocks, Sysdig events, or packets of no known interface) and \
             {} not written (first: frame {})",
            not_packets.count,
            if one { "is" } else { "are" },
            if one { "was" } else { "were" },
            not_packets.first_frame
        );
    }
    if before_1970.count > 0 {
        say!(
            "capdiag: warning: {} frame{} dated before 1970, which pcapng cannot hold, \
             written as 1970-01-01 00:00:00 (first: frame {})",
            before_1970.count,
            if before_1970.count == 1 { "" } else { "s" },
            before_1970.first_frame
        );
    }
    if written == 0 {
        say!("capdiag: warning: no frame matched");
    }
    EXIT_OK
}

fn fail_threshold(f: crate::cli::FailOn) -> Option<crate::finding::Severity> {
    use crate::cli::FailOn;
    use crate::finding::Severity;
    match f {
        FailOn::Info => Some(Severity::Info),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Error => Some(Severity::Error),
        FailOn::Never => None,
    }
}

#[derive(serde::Serialize)]
struct WatchLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// `null` when a file is read (`-r`).
    interface: Option<&'a str>,
    file: Option<&'a str>,
    /// Packets the kernel dropped while this finding's evidence was being captured (from its
    /// first evidence frame to the moment it was made): when not 0, evidence may be missing.
    drops_during_evidence: u64,
    #[serde(flatten)]
    finding: &'a crate::finding::Finding,
}

/// An NDJSON line of type `drops`: the kernel dropped packets (live capture only).
#[derive(serde::Serialize)]
struct DropsLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    interface: Option<&'a str>,
    file: Option<&'a str>,
    #[serde(flatten)]
    report: crate::capture::live::DropReport,
}

#[derive(serde::Serialize)]
struct WatchSummary<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    interface: Option<&'a str>,
    file: Option<&'a str>,
    link_type: String,
    frames: u64,
    captured_bytes: u64,
    tcp_streams: u64,
    exchanges: u64,
    findings: usize,
    seconds: f64,
    kernel: crate::capture::live::LiveStats,
    snaplen_truncated_frames: u64,
    skipped: Vec<crate::engine::Skipped>,
    tcp: crate::output::TcpCounters,
    rule_state_dropped: u64,
    stopped_by: &'a str,
}

/// How long an idle watch waits for frames before letting time move on (ms).
const POLL_MS: u64 = 200;

/// The longest a captured packet waits in the kernel's buffer before it is handed over (ms).
const BLOCK_TIMEOUT_MS: i32 = 100;

/// The smallest snap length `watch` captures with: link, IP and TCP headers with options.
const MIN_SNAPLEN: i32 = 64;

/// Where `watch` reads frames from.
enum Source {
    Live(crate::capture::live::LiveCapture),
    /// A capture file (`-r`), read as if its frames were arriving.
    File(CaptureReader),
}

impl Source {
    fn link_types(&self) -> String {
        match self {
            Source::Live(c) => c.link_type().to_string(),
            Source::File(r) => r
                .link_types()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        match self {
            Source::Live(c) => c.flush(),
            Source::File(_) => Ok(()),
        }
    }

    /// The kernel's counters (none for a file).
    fn stats(&mut self) -> crate::capture::live::LiveStats {
        match self {
            Source::Live(c) => c.stats(),
            Source::File(_) => crate::capture::live::LiveStats::default(),
        }
    }
}

/// Says, in the watch's output, that the kernel dropped packets: an NDJSON line of type `drops`,
/// or a warning line among the findings. An output that has gone is seen by the next finding
/// or the summary.
fn say_drops(
    r: &crate::capture::live::DropReport,
    json: bool,
    interface: Option<&str>,
    file: Option<&str>,
) {
    let mut out = io::stdout().lock();
    let _ = if json {
        serde_json::to_writer(
            &mut out,
            &DropsLine {
                kind: "drops",
                interface,
                file,
                report: *r,
            },
        )
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
    } else {
        writeln!(
            out,
            "capdiag: warning: the kernel dropped {} packets between frames {} and {} ({} since \
             the start): its buffer was full. Findings with evidence there may be incomplete; \
             raise --buffer-mib, lower --snaplen or narrow the capture with -f.\n",
            r.dropped_by_kernel, r.after_frame, r.until_frame, r.total_dropped_by_kernel
        )
    }
    .and_then(|()| out.flush());
}

/// `capdiag watch`.
pub fn watch(args: &crate::cli::WatchArgs) -> u8 {
    use crate::capture::live::{LiveCapture, LiveOptions, Read, list_interfaces};
    use crate::cli::WatchFormat;
    use crate::output::findings::finding_block;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::{Duration, Instant, SystemTime};

    if args.list_interfaces {
        return match list_interfaces() {
            Ok(list) => print_text(
                &list
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{}.{}\n", i + 1, crate::text::printable(l)))
                    .collect::<String>(),
            ),
            Err(e) => {
                report_error("listing interfaces", &e);
                EXIT_ERROR
            }
        };
    }
    let rules = match crate::rules::instantiate(&args.rule_args.rules) {
        Ok(r) => r,
        Err(e) => {
            report_error("--rules", &e);
            return EXIT_ERROR;
        }
    };
    // Where the frames come from: an interface, or a capture file read as if it were one.
    let mut source = match &args.read {
        Some(path) => match open_or_report(path, &name_of(path)) {
            Some(r) => Source::File(r),
            None => return EXIT_ERROR,
        },
        None => {
            let Some(iface) = args.interface.clone() else {
                report_error("watch", &"-i IFACE or -r FILE is required");
                return EXIT_ERROR;
            };
            let snaplen = match args.snaplen {
                0 => 262_144,
                n if n < MIN_SNAPLEN => {
                    say!(
                        "capdiag: warning: --snaplen {n} is raised to {MIN_SNAPLEN}, room for the \
                         headers of a TCP segment"
                    );
                    MIN_SNAPLEN
                }
                n => n,
            };
            let opts = LiveOptions {
                interface: iface,
                filter: args.filter.clone(),
                snaplen,
                // 1..=2047 MiB (the command line's bounds): at most i32::MAX bytes.
                buffer: args.buffer_mib.clamp(1, 2047).saturating_mul(1024 * 1024),
                timeout_ms: BLOCK_TIMEOUT_MS,
            };
            match LiveCapture::open(&opts, args.write.as_deref()) {
                Ok(c) => Source::Live(c),
                Err(e) => {
                    say!("capdiag: {e}");
                    return EXIT_ERROR;
                }
            }
        }
    };
    // The interface watched (none when a file is read), and what the text output calls the
    // source.
    let iface = args.interface.clone().filter(|_| args.read.is_none());
    let label = iface
        .clone()
        .or_else(|| args.read.as_deref().map(name_of))
        .unwrap_or_default();
    // Why the capture stopped: 0 running, 1 signal, 2 duration. The loop looks at it at least
    // every POLL_MS, so stopping is prompt on an idle interface too.
    let stop = Arc::new(AtomicU8::new(0));
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            report_error("installing signal handlers", &e);
            return EXIT_ERROR;
        }
    };
    let sig_handle = signals.handle();
    // A byte written here wakes the loop from its wait for packets at once.
    let (wake_rx, wake_tx) = match io::pipe() {
        Ok(p) => p,
        Err(e) => {
            report_error("creating a pipe", &e);
            return EXIT_ERROR;
        }
    };
    let wake_tx = Arc::new(wake_tx);
    {
        let stop = Arc::clone(&stop);
        let wake = Arc::clone(&wake_tx);
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                stop.store(1, Ordering::SeqCst);
                let _ = (&*wake).write_all(b"s");
            }
        });
    }
    if let Some(secs) = args.duration {
        let stop = Arc::clone(&stop);
        let wake = Arc::clone(&wake_tx);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            let _ = stop.compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst);
            let _ = (&*wake).write_all(b"d");
        });
    }
    // The file whose frame numbers the findings give: the one written, or the one read.
    let write_name = args.write.as_deref().or(args.read.as_deref()).map(name_of);
    let json = args.format == WatchFormat::Ndjson;
    match (&source, &iface) {
        (Source::Live(cap), Some(iface)) => say!(
            "capdiag: watching {iface} ({}){}; Ctrl-C to stop",
            cap.link_type(),
            write_name
                .as_ref()
                .map(|w| format!(", writing {w}"))
                .unwrap_or_default()
        ),
        _ => say!("capdiag: reading {}", write_name.as_deref().unwrap_or("-")),
    }
    let color = use_color();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut n = 0usize;
    let mut worst = None;
    let extract_name = write_name.clone().unwrap_or_else(|| "CAPTURE.pcap".into());
    // The first error writing the findings; the capture stops on it.
    let mut io_error: Option<io::Error> = None;
    let output_gone = std::cell::Cell::new(false);
    // Frames read so far, and where the kernel dropped packets among them.
    let frames = std::cell::Cell::new(0u64);
    let drops = std::cell::RefCell::new(crate::capture::live::DropLog::default());
    let mut on_finding = |f: crate::finding::Finding| {
        n += 1;
        worst = worst.max(Some(f.severity));
        if io_error.is_some() {
            return;
        }
        let first = f.frames.first().copied().unwrap_or(f.key_frame);
        let dropped = drops.borrow().during(first, frames.get().saturating_add(1));
        let r = if json {
            serde_json::to_writer(
                &mut out,
                &WatchLine {
                    kind: "finding",
                    interface: iface.as_deref(),
                    file: write_name.as_deref(),
                    drops_during_evidence: dropped,
                    finding: &f,
                },
            )
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
        } else {
            let mut block = finding_block(&f, n, &extract_name, color);
            if dropped > 0 {
                block.push_str(&format!(
                    "  warning: the kernel dropped {dropped} packets while this evidence was \
                     captured; it may be incomplete (see docs/watch.md, Drops)\n"
                ));
            }
            writeln!(out, "{block}")
        };
        if let Err(e) = r.and_then(|()| out.flush()) {
            io_error = Some(e);
            output_gone.set(true);
        }
    };
    let mut engine = Engine::new(args.limits.to_limits());
    let mut set = crate::rules::RuleSet::new(rules, &mut on_finding);
    let started = Instant::now();
    let mut last_flush = Instant::now();
    let mut failed: Option<String> = None;
    let wall_ns = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    let mut read_end = None;
    match &mut source {
        Source::Live(cap) => loop {
            if stop.load(Ordering::SeqCst) != 0
                || args.count.is_some_and(|c| frames.get() >= c)
                || output_gone.get()
            {
                break;
            }
            match cap.read(frames.get() + 1, &mut |f| {
                engine.frame(f, &mut set);
            }) {
                Read::Frame => frames.set(frames.get() + 1),
                Read::Idle => {
                    if !cap.wait(POLL_MS, &wake_rx) {
                        engine.idle(wall_ns(), &mut set);
                    }
                }
                Read::Stopped => break,
                Read::Failed(e) => {
                    failed = Some(e);
                    break;
                }
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                let _ = cap.flush();
                last_flush = Instant::now();
                // Drops are looked for as often, and said as they happen.
                let report = drops.borrow_mut().check(
                    cap.stats(),
                    frames.get(),
                    started.elapsed().as_secs_f64(),
                );
                if let Some(r) = report {
                    say_drops(&r, json, iface.as_deref(), write_name.as_deref());
                }
            }
        },
        Source::File(reader) => {
            let end = read_frames(reader, 1, &mut engine, &mut set, |_| {
                frames.set(frames.get() + 1);
                stop.load(Ordering::SeqCst) == 0
                    && args.count.is_none_or(|c| frames.get() < c)
                    && !output_gone.get()
            });
            read_end = Some(end);
        }
    }
    sig_handle.close();
    engine.finish(&mut set);
    let dropped = set.state_dropped();
    drop(set);
    let flushed = source.flush();
    let kernel = source.stats();
    if let Source::Live(_) = source {
        // Drops since the last check, then those not yet said.
        let mut log = drops.borrow_mut();
        let last = log.check(kernel, frames.get(), f64::INFINITY);
        if let Some(r) = last.or_else(|| log.flush()) {
            if io_error.is_none() {
                say_drops(&r, json, iface.as_deref(), write_name.as_deref());
            }
        }
    }
    let stats = engine.stats();
    let stopped_by = match (stop.load(Ordering::SeqCst), &failed) {
        (_, Some(_)) => "error",
        _ if io_error.is_some() => "output",
        (1, _) => "signal",
        (2, _) => "duration",
        _ if args.count.is_some_and(|c| frames.get() >= c) => "count",
        _ => "end",
    };
    let summary = WatchSummary {
        kind: "summary",
        interface: iface.as_deref(),
        file: write_name.as_deref(),
        link_type: source.link_types(),
        frames: stats.frames,
        captured_bytes: stats.captured_bytes,
        tcp_streams: stats.flow.tcp_streams,
        exchanges: stats.exchanges,
        findings: n,
        seconds: started.elapsed().as_secs_f64(),
        kernel,
        snaplen_truncated_frames: stats.snaplen_truncated,
        skipped: stats.skipped(),
        tcp: crate::output::TcpCounters::of(&stats.flow, &stats.http),
        rule_state_dropped: dropped,
        stopped_by,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if io_error.is_some() {
        // Nowhere to write it.
        Ok(())
    } else if json {
        serde_json::to_writer(&mut out, &summary)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        let details = crate::output::table::summary_details(&FileSummary::of_stats(
            label.clone(),
            String::new(),
            Vec::new(),
            stats,
            String::new(),
        ));
        let rules = if dropped > 0 {
            format!("  rules: {dropped} items dropped from full rule tables\n")
        } else {
            String::new()
        };
        let drops = if iface.is_some() {
            format!(
                " ({} dropped by the kernel, {} by the interface)",
                kernel.dropped_by_kernel, kernel.dropped_by_interface
            )
        } else {
            String::new()
        };
        let written_to = match (&write_name, &args.write) {
            (Some(w), Some(_)) => format!("; frames written to {}", crate::text::printable(w)),
            _ => String::new(),
        };
        write!(
            out,
            "{}: {} frames{drops}, {} TCP streams, {} exchanges, {} in {:.1} s{written_to}\n{details}{rules}",
            crate::text::printable(&label),
            stats.frames,
            stats.flow.tcp_streams,
            stats.exchanges,
            count_line_n(n),
            summary.seconds,
        )
    };
    if let Some(end) = &read_end {
        warn_if_incomplete(&label, end);
    }
    if let Some(e) = io_error
        .or_else(|| written.and_then(|()| out.flush()).err())
        .filter(|e| !is_broken_pipe(e))
    {
        report_error("writing output", &e);
        return EXIT_ERROR;
    }
    if let Err(e) = flushed {
        report_error("writing the capture file", &e);
        return EXIT_ERROR;
    }
    if let Some(e) = failed {
        report_error(&format!("capturing on {label}"), &e);
        return EXIT_ERROR;
    }
    match (fail_threshold(args.rule_args.fail_on), worst) {
        (Some(t), Some(w)) if w >= t => EXIT_FINDINGS,
        _ => EXIT_OK,
    }
}
