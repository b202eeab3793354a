//! `capdiag http`: the exchanges of captures, as a table or JSON.

use super::{
    EXIT_ERROR, EXIT_OK, finish_listing, name_of, read_frames, warn_if_incomplete, write_failed,
};
use crate::cli::{HttpArgs, OutputFormat};
use crate::engine::{Engine, Event, Sink};
use crate::output::FileSummary;
use crate::output::json::{JsonExchange, JsonHttpWriter};
use crate::output::table::{ROWS_PER_TABLE, exchange_row, exchange_table, summary_text};
use comfy_table::Cell;
use std::io::{self, Write};

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

    fn event(&mut self, ev: Event<'_>) {
        let Event::Exchange(ex) = ev else {
            return;
        };
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

/// `capdiag http`.
pub fn http(args: &HttpArgs) -> u8 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut limits = args.limits.to_limits();
    if args.show_body {
        limits.app.http.bodies = crate::http::BodyPolicy::All;
    }
    let Some(keys) = super::tls_keys(&args.tls, false) else {
        return EXIT_ERROR;
    };
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
            return write_failed(&e, code);
        }
        warn_if_incomplete(&name, &end);
        summaries.push(summary);
    }
    finish_listing(&mut out, json, &summaries, code)
}
