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
    let Some(keys) = super::tls_keys(&args.tls, false) else {
        return EXIT_ERROR;
    };
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
            let Some(mut reader) = super::open_with_keys(&args.file, &name, &keys) else {
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
                &keys,
                &[],
                &mut keep,
                None,
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
    // With the secrets: the TLS connections the frames belong to, and their secrets.
    let tls = if args.with_keys {
        match tls_connections(&args.file, &name, &keys, args, ranges.as_deref()) {
            Some(t) => Some(t),
            None => return EXIT_ERROR,
        }
    } else {
        None
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
        Selection {
            ranges: ranges.as_deref(),
            stream: args.stream,
            tls: tls.as_ref(),
        },
        args.limits.to_limits(),
        &name,
        &args.out,
    )
}

/// Whether frame `n` is in one of `ranges` (inclusive).
fn in_ranges(ranges: &[(u64, u64)], n: u64) -> bool {
    ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))
}

/// Which frames are written.
struct Selection<'a> {
    ranges: Option<&'a [(u64, u64)]>,
    stream: Option<u64>,
    /// With `--with-keys`: the TLS connections of the frames.
    tls: Option<&'a TlsKept>,
}

/// The TLS connections the frames asked for belong to, with secrets: each one's frames up to
/// the last asked for are written too (decrypting a record needs the handshake and the
/// records before it), and their key log lines go into the output.
struct TlsKept {
    /// Stream → the last frame to write of it.
    streams: std::collections::BTreeMap<u64, u64>,
    key_log: Vec<u8>,
    connections: usize,
}

/// Reads the capture once to find [`TlsKept`]: which frames are asked for, which TLS
/// connections (`tcp.stream`, ClientHello random) they are in, which of those the secrets
/// cover. `None` when the capture cannot be read (said).
fn tls_connections(
    path: &Path,
    name: &str,
    keys: &std::sync::Arc<crate::tls::KeyStore>,
    args: &crate::cli::ExtractArgs,
    ranges: Option<&[(u64, u64)]>,
) -> Option<TlsKept> {
    use std::collections::BTreeMap;
    /// Stream → its ClientHello's random and frame.
    struct Randoms(BTreeMap<u64, ([u8; 32], u64)>);
    impl Sink for Randoms {
        fn event(&mut self, ev: crate::engine::Event<'_>) {
            if let crate::engine::Event::Tls(t) = ev
                && let Some(h) = &t.client_hello
            {
                self.0.insert(t.stream, (h.random, h.frame));
            }
        }
    }
    let mut reader = super::open_with_keys(path, name, keys)?;
    let mut engine = Engine::new(args.limits.to_limits());
    let mut randoms = Randoms(BTreeMap::new());
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let end = reader.for_each_frame(|f| {
        let s = engine.frame(f, &mut randoms);
        let asked = match ranges {
            Some(r) => in_ranges(r, f.number),
            None => s.is_some() && s == args.stream,
        };
        if let (true, Some(s)) = (asked, s) {
            last.insert(s, f.number);
        }
    });
    engine.finish(&mut randoms);
    warn_if_incomplete(name, &end);
    let mut streams = BTreeMap::new();
    let mut wanted = Vec::new();
    for (s, frame) in last {
        // Only a connection whose handshake is written: before its ClientHello there is
        // nothing to decrypt.
        if let Some((r, hello)) = randoms.0.get(&s)
            && *hello <= frame
            && keys.lookup(r).is_some()
        {
            streams.insert(s, frame);
            wanted.push(*r);
        }
    }
    Some(TlsKept {
        connections: wanted.len(),
        key_log: keys.key_log_of(&wanted),
        streams,
    })
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
    sel: Selection<'_>,
    limits: crate::engine::Limits,
    name: &str,
    out_path: &Path,
) -> u8 {
    use crate::capture::write::CaptureWriter;
    let Selection {
        ranges,
        stream,
        tls,
    } = sel;
    let pcap_ns = match reader.format() {
        // Secrets need a pcapng.
        crate::capture::file::Format::Pcap { nanosecond, .. } if tls.is_none() => Some(nanosecond),
        _ => None,
    };
    // Frames written because their TLS connection's were asked for.
    let mut added = 0u64;
    let mut file = Some(file);
    let mut writer: Option<CaptureWriter<io::BufWriter<File>>> = None;
    let mut error: Option<io::Error> = None;
    let mut written = 0u64;
    // Frames asked for that are not packets (pcapng records of other kinds): not written.
    let mut not_packets = crate::engine::Tally::default();
    // Frames from before 1970, which a pcapng file cannot date: written at 1970-01-01.
    let mut before_1970 = crate::engine::Tally::default();
    let mut engine = (stream.is_some() || tls.is_some()).then(|| Engine::new(limits));
    struct Nothing;
    impl Sink for Nothing {
        fn event(&mut self, _: crate::engine::Event<'_>) {}
    }
    let end = reader.for_each_frame(|f| {
        let s = engine.as_mut().and_then(|e| e.frame(f, &mut Nothing));
        let mut keep = match (ranges, stream) {
            (Some(r), _) => in_ranges(r, f.number),
            (None, Some(want)) => s == Some(want),
            _ => false,
        };
        if !keep
            && let (Some(t), Some(s)) = (tls, s)
            && t.streams.get(&s).is_some_and(|&last| f.number <= last)
        {
            keep = true;
            added += 1;
        }
        if !keep || error.is_some() {
            return;
        }
        if f.link_type.record_kind().is_some() {
            not_packets.add(f.number);
            return;
        }
        if writer.is_none()
            && let Some(out) = file.take()
        {
            let w = match pcap_ns {
                Some(ns) => CaptureWriter::pcap(out, f.link_type, ns),
                None => CaptureWriter::pcapng(out),
            };
            let w = w.and_then(|mut w| {
                if let Some(t) = tls.filter(|t| !t.key_log.is_empty()) {
                    w.write_secrets(crate::tls::keys::TLS_KEY_LOG, &t.key_log)?;
                }
                Ok(w)
            });
            match w {
                Ok(w) => writer = Some(w),
                Err(e) => error = Some(e),
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
    if let Some(t) = tls {
        say!(
            "capdiag: with the secrets of {} TLS connection{} (a Decryption Secrets Block), and \
             {added} more frame{} of {} (the handshake and the records before those asked \
             for, which decrypting needs)",
            t.connections,
            if t.connections == 1 { "" } else { "s" },
            if added == 1 { "" } else { "s" },
            if t.connections == 1 { "it" } else { "them" },
        );
    }
    if written == 0 {
        say!("capdiag: warning: no frame matched");
    }
    EXIT_OK
}
