//! `capdiag watch`: the rules on live traffic (or a file read as if live), each finding
//! printed the moment its evidence is conclusive.

use super::{
    EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, count_line_n, fail_threshold, is_broken_pipe, name_of,
    print_text, read_frames, report_error, warn_if_incomplete,
};
use crate::capture::file::{CaptureReader, ReadEnd};
use crate::engine::Engine;
use crate::output::FileSummary;
use crate::output::finding_writer::{FindingWriter, Origin, Style};
use std::io::{self, Write};
use std::sync::Arc;

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
    /// Findings suppressed as repeats (absent when none were).
    #[serde(skip_serializing_if = "is_zero")]
    findings_suppressed: u64,
    stopped_by: &'a str,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How long an idle watch waits for frames before letting time move on (ms).
const POLL_MS: u64 = 200;

/// The longest a captured packet waits in the kernel's buffer before it is handed over (ms).
const BLOCK_TIMEOUT_MS: i32 = 100;

/// How long `watch -r` waits for a pipe's next bytes before letting time move on (ms).
const PIPE_PAUSE_MS: u64 = 500;

/// How long a capture feeding a pipe may hold a packet back before writing it: tcpdump's
/// buffer timeout is 1 s, and a remote pipe (`kubectl exec`, SSH) adds its own delays. Time
/// moves on only that far behind the silence, so a packet still on its way is not overtaken by
/// a deadline.
const PIPE_HOLD_NS: i64 = 2_000_000_000;

/// A pipe is taken for a live feed when its latest frame is at most this far from the clock
/// (either way: the capturing host's clock may differ a little). A stored capture replayed
/// through a slow pipe (`zcat`, `ssh cat`) is older, and its time moves on only with its frames,
/// so the same bytes give the same findings.
const PIPE_LIVE_WITHIN_NS: i64 = 60_000_000_000;

/// The smallest snap length `watch` captures with: link, IP and TCP headers with options.
const MIN_SNAPLEN: i32 = 64;

/// Where `watch` reads frames from.
enum Source {
    Live(crate::capture::live::LiveCapture),
    /// A capture file (`-r`), read as if its frames were arriving; it may pause (a pipe).
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

/// `capdiag watch`.
pub fn watch(args: &crate::cli::WatchArgs) -> u8 {
    use crate::capture::live::{LiveCapture, LiveOptions, Read, list_interfaces};
    use crate::cli::WatchFormat;
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
    // Key logs are followed: a client writing SSLKEYLOGFILE while the capture runs.
    let Some(keys) = super::tls_keys(&args.tls, true) else {
        return EXIT_ERROR;
    };
    // Where the frames come from: an interface, or a capture file read as if it were one.
    let mut source = match &args.read {
        Some(path) => match super::open_stream(path) {
            Ok(mut r) => {
                super::take_embedded_keys(&mut r, &name_of(path), &keys);
                Source::File(r)
            }
            Err(e) => {
                report_error(&name_of(path), &e);
                return EXIT_ERROR;
            }
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
    let style = if json {
        Style::Ndjson
    } else {
        Style::Text(super::text_style(&args.diagram))
    };
    // Shared by the findings and the drop reports; flushed after each.
    let out = match FindingWriter::start(io::stdout().lock(), style) {
        Ok(w) => std::cell::RefCell::new(w),
        Err(e) => {
            report_error("writing output", &e);
            return EXIT_ERROR;
        }
    };
    let mut n = 0usize;
    let mut worst = None;
    let extract_name = write_name.clone().unwrap_or_else(|| "CAPTURE.pcap".into());
    let extract_keys = super::extract_key_args(&args.tls, &keys);
    let from = Origin {
        file: write_name.as_deref(),
        interface: iface.as_deref(),
        extract_from: &extract_name,
        extract_keys: &extract_keys,
    };
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
        let mut w = out.borrow_mut();
        if let Err(e) = w.finding(&f, n, &from, dropped).and_then(|()| w.flush()) {
            io_error = Some(e);
            output_gone.set(true);
        }
    };
    let mut set = crate::rules::RuleSet::new(rules, &mut on_finding);
    let mut engine = Engine::new(set.configure(args.limits.to_limits()));
    engine.set_tls_keys(Arc::clone(&keys));
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
                    let mut w = out.borrow_mut();
                    // An output that has gone is seen by the next finding or the summary.
                    let _ = w.drops(&r, &from).and_then(|()| w.flush());
                }
            }
        },
        Source::File(reader) => {
            // Through a pipe from a live capture that goes quiet, time moves on as in a live
            // watch: from the latest frame's time by the time gone since the input paused,
            // less what the capture may still hold back (`PIPE_HOLD_NS`); only for a live feed
            // (`PIPE_LIVE_WITHIN_NS`).
            reader.allow_pauses(
                PIPE_PAUSE_MS,
                wake_rx.try_clone().ok().map(std::os::fd::OwnedFd::from),
            );
            let mut quiet_since: Option<(u64, Instant)> = None;
            let end = loop {
                let end = read_frames(reader, 1, &mut engine, &mut set, |_| {
                    frames.set(frames.get() + 1);
                    stop.load(Ordering::SeqCst) == 0
                        && args.count.is_none_or(|c| frames.get() < c)
                        && !output_gone.get()
                });
                let ReadEnd::Paused { offset } = end else {
                    break end;
                };
                if stop.load(Ordering::SeqCst) != 0 || output_gone.get() {
                    break ReadEnd::Stopped { offset };
                }
                let since = match quiet_since {
                    Some((n, t)) if n == frames.get() => t,
                    _ => {
                        let t = Instant::now()
                            .checked_sub(Duration::from_millis(PIPE_PAUSE_MS))
                            .unwrap_or_else(Instant::now);
                        quiet_since = Some((frames.get(), t));
                        t
                    }
                };
                if let Some(latest) = engine.stats().last_ts
                    && latest.abs_diff(wall_ns()) <= PIPE_LIVE_WITHIN_NS.unsigned_abs()
                {
                    let quiet = i64::try_from(since.elapsed().as_nanos()).unwrap_or(i64::MAX);
                    let now = latest.saturating_add(quiet.saturating_sub(PIPE_HOLD_NS).max(0));
                    engine.idle(now, &mut set);
                }
            };
            read_end = Some(end);
        }
    }
    sig_handle.close();
    engine.finish(&mut set);
    // Lines of the followed key logs that were not used, found as they were read.
    super::report_key_lines(&keys);
    let dropped = set.state_dropped();
    let suppressed = set.suppressed();
    drop(set);
    let flushed = source.flush();
    let kernel = source.stats();
    if let Source::Live(_) = source {
        // Drops since the last check, then those not yet said.
        let mut log = drops.borrow_mut();
        let last = log.check(kernel, frames.get(), f64::INFINITY);
        if let Some(r) = last.or_else(|| log.flush())
            && io_error.is_none()
        {
            let _ = out.borrow_mut().drops(&r, &from);
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
        findings_suppressed: suppressed,
        stopped_by,
    };
    let mut out = out.borrow_mut();
    let written = if io_error.is_some() {
        // Nowhere to write it.
        Ok(())
    } else if json {
        out.line(&summary)
    } else {
        let details = crate::output::table::summary_details(&FileSummary::of_stats(
            label.clone(),
            String::new(),
            Vec::new(),
            stats,
            String::new(),
        ));
        let rules = super::rules_summary(dropped, suppressed);
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
        out.text(&format!(
            "{}: {} frames{drops}, {} TCP streams, {} exchanges, {} in {:.1} s{written_to}\n{details}{rules}",
            crate::text::printable(&label),
            stats.frames,
            stats.flow.tcp_streams,
            stats.exchanges,
            count_line_n(n),
            summary.seconds,
        ))
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
