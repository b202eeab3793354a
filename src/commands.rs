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

/// Prints an error once, the way every capdiag error looks.
pub fn report_error(what: &str, err: &dyn std::fmt::Display) {
    eprintln!("capdiag: {what}: {err}");
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

/// `capdiag http`.
pub fn http(args: &HttpArgs) -> u8 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let limits = args.limits.to_limits();
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
        let name = path.display().to_string();
        let mut reader = match open_capture(path) {
            Ok(r) => r,
            Err(e) => {
                report_error(&name, &e);
                code = EXIT_ERROR;
                continue;
            }
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
        let end = reader.for_each_frame(|f| {
            engine.frame(f, &mut sink);
        });
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
        if end != crate::capture::file::ReadEnd::Complete {
            eprintln!("capdiag: warning: {name}: {end}");
        }
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
