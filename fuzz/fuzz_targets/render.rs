//! A whole capture through the engine and every rule the way the commands run it by default
//! (`-j 2`: read and prepared on a second thread, that is decoded, with the decoding attached
//! to the batch's copy of each frame, and HTTP header blocks parsed ahead), with everything
//! the commands print made from it: each exchange as a `capdiag http` table row and as JSON
//! with its decoded body (`--show-body`), each finding as an `analyze` block (plain and
//! coloured, with its ladder diagram) and as JSON, the file summary as text and JSON, and the
//! HTML report of it all. Must never panic; the attached decoding must equal decoding the
//! copy; every JSON text must parse back; the HTML report must hold no tag but its own.
#![no_main]

use capdiag::capture::file::CaptureReader;
use capdiag::decode::decode;
use capdiag::engine::{Engine, Event, Sink};

use capdiag::http::{BodyPolicy, Exchange};
use capdiag::output::FileSummary;
use capdiag::output::findings::finding_block;
use capdiag::output::html::Report;
use capdiag::output::json::JsonExchange;
use capdiag::output::table::{exchange_row, exchange_table, summary_text};
use capdiag::rules::{RuleSet, instantiate};
use libfuzzer_sys::fuzz_target;

fn parses(json: &[u8]) {
    assert!(
        serde_json::from_slice::<serde_json::Value>(json).is_ok(),
        "invalid JSON: {}",
        String::from_utf8_lossy(json)
    );
}

/// Text for a terminal holds no control character but line feeds (and, in colour, the SGR
/// sequences capdiag writes itself), no C1 control and no bidirectional control.
fn terminal_safe(text: &str, color: bool) {
    let mut rest = text;
    if color {
        // Only capdiag's own colour sequences: ESC [ digits/semicolons m.
        let mut plain = String::new();
        while let Some(i) = rest.find('\u{1b}') {
            plain.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let end = after.find('m').expect("an SGR sequence");
            assert!(
                after[..end].starts_with('[')
                    && after[1..end].bytes().all(|b| b.is_ascii_digit() || b == b';'),
                "not a colour sequence: {:?}",
                &after[..end]
            );
            rest = &after[end + 1..];
        }
        plain.push_str(rest);
        return terminal_safe(&plain, false);
    }
    for c in rest.chars() {
        assert!(
            c == '\n' || !capdiag::text::is_unsafe(c),
            "{c:?} reaches the terminal: {text:?}"
        );
    }
}

/// The tags the HTML report writes: any other came from the capture unescaped.
const TAGS: &[&str] = &[
    "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
    "p", "ul", "li", "span", "strong", "code", "section", "table", "thead", "tbody", "tr", "th",
    "td", "div", "article", "figure", "figcaption", "dl", "dt", "dd", "footer", "svg", "g",
    "text", "line", "rect", "polygon",
];

fn html_safe(page: &str) {
    for (i, _) in page.match_indices('<') {
        let name: String = page[i + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        assert!(
            TAGS.iter().any(|t| t.eq_ignore_ascii_case(&name)),
            "tag <{name}> in the report: {}",
            &page[i..(i + 80).min(page.len())]
        );
    }
}

/// Renders each exchange, then hands everything to the report and the rules.
struct Render<'f> {
    rules: RuleSet<'f>,
    rows: Vec<Vec<comfy_table::Cell>>,
    report: &'f std::cell::RefCell<Report>,
}

impl Sink for Render<'_> {
    fn event(&mut self, ev: Event<'_>) {
        if let Event::Exchange(ex) = ev {
            self.exchange(ex);
        }
        self.report.borrow_mut().event(&ev);
        self.rules.event(ev);
    }
}

impl Render<'_> {
    fn exchange(&mut self, ex: &Exchange) {
        self.rows.push(exchange_row(ex));
        if self.rows.len() >= 16 {
            let mut t = exchange_table();
            for r in self.rows.drain(..) {
                t.add_row(r);
            }
            terminal_safe(&t.to_string(), false);
        }
        let json = serde_json::to_vec(&JsonExchange::new("f.pcap", ex, Some(4096))).expect("json");
        parses(&json);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) =
        CaptureReader::with_buffer_len(std::io::Cursor::new(data.to_vec()), 64 * 1024)
    else {
        return;
    };
    let mut limits = capdiag::engine::Limits::default();
    limits.app.http.bodies = BodyPolicy::All;
    let mut engine = Engine::new(limits);
    let mut n = 0;
    let report = std::cell::RefCell::new(Report::default());
    let mut on_finding = |f: capdiag::finding::Finding| {
        n += 1;
        for color in [false, true] {
            terminal_safe(&finding_block(&f, n, "f.pcap", color), color);
        }
        parses(&serde_json::to_vec(&f).expect("json"));
        report.borrow_mut().finding(f, n);
    };
    let mut sink = Render {
        rules: RuleSet::new(instantiate(&[]).expect("all rules"), &mut on_finding),
        rows: Vec::new(),
        report: &report,
    };
    let preparer = engine.preparer();
    let end = reader.for_each_frame_prefetched(
        |f, store| (decode(f).detach(f.data), preparer.prepare(f, store)),
        |f, (d, prepared), store| {
            let d = d
                .as_ref()
                .expect("decode's slices lie in the frame")
                .attach(f.data);
            assert_eq!(format!("{d:?}"), format!("{:?}", decode(f)));
            engine.frame_prepared(f, prepared, store, &mut sink);
        },
    );
    engine.finish(&mut sink);
    let mut t = exchange_table();
    for r in sink.rows.drain(..) {
        t.add_row(r);
    }
    terminal_safe(&t.to_string(), false);
    drop(sink);
    let summary = FileSummary::new(
        "f.pcap",
        reader.format(),
        reader.link_types(),
        engine.stats(),
        &end,
    );
    terminal_safe(&summary_text(&summary), false);
    parses(&serde_json::to_vec(&summary).expect("json"));
    let mut report = report.into_inner();
    report.file_done(summary, n, 0, 0);
    html_safe(&report.render());
});
