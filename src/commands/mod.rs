//! What each subcommand does: open inputs, run the engine, hand results to a printer in
//! [`crate::output`]. One file per subcommand; what they share is here.

use crate::capture::file::{CaptureReader, OpenError};
use crate::engine::Engine;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

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

mod analyze;
mod conns;
mod extract;
mod http;
mod install;
mod rule_docs;
mod watch;

pub use analyze::analyze;
pub use conns::conns;
pub use extract::extract;
pub use http::http;
pub use install::{completions, man};
pub use rule_docs::{explain, rules};
pub use watch::watch;

/// Exit codes (ripgrep's convention).
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 2;

/// Opens a capture by path; `-` is standard input.
pub fn open_capture(path: &Path) -> Result<CaptureReader, OpenError> {
    if path.as_os_str() == "-" {
        return CaptureReader::new(io::stdin());
    }
    CaptureReader::new(open_file(path)?)
}

/// Opens a capture for `watch -r`, as [`open_capture`], able to pause when it comes through a
/// pipe from a live capture that goes quiet (`crate::capture::stream`).
pub fn open_stream(path: &Path) -> Result<CaptureReader, OpenError> {
    use crate::capture::stream::Pausable;
    let input = if path.as_os_str() == "-" {
        Pausable::stdin()?
    } else {
        Pausable::new(open_file(path)?)
    };
    CaptureReader::pausable(input)
}

fn open_file(path: &Path) -> io::Result<File> {
    if path.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    File::open(path)
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

/// The run's TLS secrets: the key logs given with `--tls-keylog`, read now (`follow` reads
/// them again for connections not found, as `watch` does while clients append to them), and
/// room for those the captures carry. `None` (said) when a key log cannot be read.
fn tls_keys(args: &crate::cli::TlsArgs, follow: bool) -> Option<Arc<crate::tls::KeyStore>> {
    match crate::tls::KeyStore::open(&args.tls_keylog, follow) {
        Ok(k) => {
            for p in args.tls_keylog.iter().filter(|p| !p.exists()) {
                say!(
                    "capdiag: note: {} does not exist yet: read when a client writes it",
                    name_of(p)
                );
            }
            let k = Arc::new(k);
            report_key_lines(&k);
            Some(k)
        }
        Err(e) => {
            report_error("--tls-keylog", &e);
            None
        }
    }
}

/// What a finding's `capdiag extract` suggestion adds when the run has TLS secrets: the
/// key logs given and `--with-keys`, so the extract opens decrypted (nothing without secrets).
fn extract_key_args(args: &crate::cli::TlsArgs, keys: &crate::tls::KeyStore) -> String {
    // Key logs given (a followed one may still be empty), or a pcapng's secrets read.
    if args.tls_keylog.is_empty() && keys.stats().randoms == 0 {
        return String::new();
    }
    let mut s: String = args
        .tls_keylog
        .iter()
        .map(|p| format!(" --tls-keylog {}", crate::text::shell_quote(&name_of(p))))
        .collect();
    s.push_str(" --with-keys");
    s
}

/// A capture was read to its end: its pcapng secrets all count from now on (for the next
/// capture), and the key log lines not used are said.
fn capture_done(keys: &crate::tls::KeyStore) {
    keys.apply_pending();
    report_key_lines(keys);
}

/// Says which key log lines were not used, by file (or capture block) and line number, never
/// by their text.
fn report_key_lines(keys: &crate::tls::KeyStore) {
    let (reports, more) = keys.take_reports();
    for r in reports {
        say!("capdiag: warning: {r}");
    }
    if more > 0 {
        say!("capdiag: warning: {more} more malformed key log lines (not used)");
    }
}

/// Opens a capture, its pcapng secrets going to `keys`, or reports why it cannot be read.
fn open_with_keys(
    path: &Path,
    name: &str,
    keys: &Arc<crate::tls::KeyStore>,
) -> Option<CaptureReader> {
    let mut reader = open_or_report(path, name)?;
    take_embedded_keys(&mut reader, name, keys);
    Some(reader)
}

/// The secrets a pcapng carries (Decryption Secrets Blocks) go to the run's key store.
fn take_embedded_keys(reader: &mut CaptureReader, name: &str, keys: &Arc<crate::tls::KeyStore>) {
    let (k, n) = (Arc::clone(keys), name.to_string());
    reader.on_secrets(move |kind, data, frame| k.add_embedded_at(&n, kind, data, frame));
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

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// What a listing command (`http`, `conns`) exits with when writing its output failed: the
/// code so far when the reader went away (a closed pipe), an error otherwise (a full disk).
fn write_failed(e: &io::Error, code: u8) -> u8 {
    if is_broken_pipe(e) {
        return code;
    }
    report_error("writing output", e);
    EXIT_ERROR
}

/// The end of a listing command: the JSON document closed with the files' summaries, or the
/// table output flushed; the exit code.
fn finish_listing(
    out: &mut dyn Write,
    json: Option<crate::output::json::JsonHttpWriter>,
    summaries: &[crate::output::FileSummary],
    code: u8,
) -> u8 {
    let result = match json {
        Some(w) => w.finish(out, summaries),
        None => out.flush(),
    };
    match result {
        Err(e) => write_failed(&e, code),
        Ok(()) => code,
    }
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

fn use_color() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How finding blocks are drawn for people: colour on a terminal, box-drawing characters
/// where the locale is UTF-8 (and not `--ascii`), the terminal's width (`COLUMNS`, else 80).
fn text_style(d: &crate::cli::DiagramArgs) -> crate::output::findings::TextStyle {
    let width = terminal_width().unwrap_or(80).clamp(60, 240);
    crate::output::findings::TextStyle {
        color: use_color(),
        ascii: d.ascii || !crate::output::findings::locale_is_utf8(),
        diagram: !d.no_diagram,
        width,
    }
}

/// The width of the terminal on standard output, or `COLUMNS`.
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if io::stdout().is_terminal()
        && let Ok(ws) = rustix::termios::tcgetwinsize(io::stdout())
        && ws.ws_col > 0
    {
        return Some(usize::from(ws.ws_col));
    }
    std::env::var("COLUMNS").ok()?.trim().parse().ok()
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

/// What a run of the rules over one capture leaves.
pub struct RulesRun {
    /// How reading ended.
    pub end: crate::capture::file::ReadEnd,
    pub engine: Engine,
    /// Rule-state items dropped because a table was full.
    pub state_dropped: u64,
    /// Findings suppressed: repeats, and connection failures explained otherwise.
    pub suppressed: u64,
}

/// The summary lines of the rules themselves, when there is something to say.
pub fn rules_summary(state_dropped: u64, suppressed: u64) -> String {
    let mut text = String::new();
    if state_dropped > 0 {
        text.push_str(&format!(
            "  rules: {state_dropped} items dropped from full rule tables\n"
        ));
    }
    if suppressed > 0 {
        text.push_str(&format!(
            "  rules: {suppressed} findings suppressed (the same problem again within the rule's interval, or a connection failure that another finding explains, a fallback to another address or a port scan)\n"
        ));
    }
    text
}

/// Runs the rules over one capture, calling `on_finding` as findings are made.
#[allow(clippy::too_many_arguments)]
pub fn run_rules(
    reader: &mut CaptureReader,
    threads: u8,
    limits: crate::engine::Limits,
    keys: &Arc<crate::tls::KeyStore>,
    only: &[String],
    on_finding: &mut dyn FnMut(crate::finding::Finding),
    on_event: Option<&mut dyn FnMut(&crate::engine::Event<'_>)>,
    progress: Option<&indicatif::ProgressBar>,
    go_on: &dyn Fn() -> bool,
) -> Result<RulesRun, String> {
    let rules = crate::rules::instantiate(only)?;
    let mut set = crate::rules::RuleSet::new(rules, on_finding);
    if let Some(f) = on_event {
        set.observe(f);
    }
    let mut engine = Engine::new(set.configure(limits));
    engine.set_tls_keys(Arc::clone(keys));
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
    capture_done(keys);
    Ok(RulesRun {
        end,
        engine,
        state_dropped: set.state_dropped(),
        suppressed: set.suppressed(),
    })
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
