//! `capdiag extract`: chosen frames (by number, stream or finding) into a new capture.

use super::{
    EXIT_ERROR, EXIT_OK, name_of, open_or_report, report_error, run_rules, warn_if_incomplete,
};
use crate::capture::file::CaptureReader;
use crate::engine::{Engine, Sink};
use std::fs::File;
use std::io;
use std::path::Path;

/// `capdiag extract`.
pub fn extract(args: &crate::cli::ExtractArgs) -> u8 {
    use crate::capture::write::parse_frame_list;
    let name = name_of(&args.file);
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
        fn event(&mut self, _: crate::engine::Event<'_>) {}
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
