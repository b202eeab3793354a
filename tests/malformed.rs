//! Damaged captures (tests/malformed/, see its README): never a panic, a clear message for what
//! was skipped, exit 2 with one line when nothing can be read.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .args(args)
        .output()
        .expect("run")
}

fn path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/malformed")
        .join(name)
        .display()
        .to_string()
}

fn http(name: &str, extra: &[&str]) -> (Value, String, Option<i32>) {
    let p = path(name);
    let mut args = vec!["http", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(&p);
    let o = run(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{name}: {err}");
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (v, err, o.status.code())
}

fn file(v: &Value) -> &Value {
    &v["files"][0]
}

#[test]
fn unreadable_files_are_one_line_and_exit_2() {
    for (name, msg) in [
        ("empty.pcap", "empty file: no capture header"),
        (
            "wrong-magic.pcap",
            "not a pcap or pcapng capture (it starts with 47 41 52 42)",
        ),
    ] {
        let (_, err, code) = http(name, &[]);
        assert_eq!(code, Some(2), "{name}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(msg), "{name}: {err}");
    }
}

#[test]
fn damaged_files_are_read_up_to_the_damage() {
    let cases = [
        ("header-only.pcap", 0, "complete"),
        (
            "record-cut-midway.pcap",
            2,
            "cut off in the middle of a record",
        ),
        (
            "record-longer-than-file.pcap",
            1,
            "cut off in the middle of a record",
        ),
        ("record-over-256k.pcap", 1, "record 2 claims 300016 bytes"),
        (
            "pcapng-bad-block-length.pcapng",
            1,
            "impossible length of 7 bytes",
        ),
        (
            "pcapng-packet-over-256k.pcapng",
            1,
            "packet 2 claims 300000 captured bytes, more than the 262144-byte maximum",
        ),
        (
            "pcapng-short-journal-block.pcapng",
            1,
            "total block length 12 of a systemd journal export block is too small (< 35)",
        ),
    ];
    for (name, frames, read) in cases {
        let (v, err, code) = http(name, &[]);
        assert_eq!(code, Some(0), "{name}");
        assert_eq!(file(&v)["frames"], frames, "{name}");
        assert!(
            file(&v)["read"].as_str().is_some_and(|r| r.contains(read)),
            "{name}: {}",
            file(&v)["read"]
        );
        if read != "complete" {
            assert!(err.contains("warning"), "{name}: {err}");
        }
    }
}

/// Records that are not packets (a systemd journal entry, custom blocks, a Sysdig event) are
/// frames in Wireshark: numbered, and listed as skipped, so that the packets after them keep
/// Wireshark's numbers. Blocks Wireshark does not number (statistics, names, local) are not.
#[test]
fn pcapng_records_that_are_not_packets_are_numbered_and_listed() {
    let (v, _, code) = http("pcapng-non-packet-records.pcapng", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(file(&v)["frames"], 11);
    assert_eq!(file(&v)["read"], "complete");
    let mut skipped: Vec<_> = file(&v)["skipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["reason"].to_string(),
                        s["count"].clone(),
                        s["first_frame"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    skipped.sort_by_key(|s| s.2.as_u64());
    assert_eq!(
        skipped,
        [
            (
                r#""pcapng systemd journal entries (not packets)""#.to_string(),
                1.into(),
                3.into()
            ),
            (
                r#""pcapng custom blocks (not packets)""#.to_string(),
                2.into(),
                6.into()
            ),
            (
                r#""pcapng Sysdig events (not packets)""#.to_string(),
                1.into(),
                8.into()
            ),
        ]
    );
    assert_eq!(v["exchanges"][0]["request"]["frame"], 5);
    assert_eq!(v["exchanges"][0]["response"]["frame"], 7);
}

#[test]
fn damaged_packets_are_skipped_with_a_reason() {
    let (v, _, _) = http("unknown-linktype.pcap", &[]);
    assert_eq!(
        file(&v)["skipped"][0]["reason"],
        "link type LINKTYPE 147 is not decoded"
    );
    assert_eq!(file(&v)["skipped"][0]["count"], 7);
    for (name, reason, streams) in [
        ("ipv4-bad-ihl.pcap", "IP header cut short or invalid", 1),
        (
            "ipv4-bad-total-length.pcap",
            "IP header cut short or invalid",
            1,
        ),
        (
            "tcp-bad-data-offset.pcap",
            "TCP header invalid (data offset below 5)",
            2,
        ),
    ] {
        let (v, _, _) = http(name, &[]);
        assert_eq!(file(&v)["skipped"][0]["reason"], reason, "{name}");
        assert_eq!(file(&v)["skipped"][0]["first_frame"], 1, "{name}");
        assert_eq!(file(&v)["tcp_streams"], streams, "{name}");
        assert_eq!(
            v["exchanges"][0]["response"]["status"], 200,
            "{name}: the good exchange after it"
        );
    }
    let (v, _, _) = http("snaplen-truncated.pcap", &[]);
    assert_eq!(file(&v)["frames"], 7);
    assert!(
        file(&v)["snaplen_truncated_frames"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    );
    assert!(
        file(&v)["tcp"]["gap_bytes"]
            .as_u64()
            .is_some_and(|n| n > 200)
    );
}

#[test]
fn header_limits_are_counted_and_parsing_goes_on() {
    for name in ["http-10000-headers.pcap", "http-1mb-header-line.pcap"] {
        let (v, _, _) = http(name, &[]);
        assert_eq!(file(&v)["tcp"]["http_header_too_large"], 1, "{name}");
        assert_eq!(v["exchanges"].as_array().map(Vec::len), Some(1), "{name}");
        assert_eq!(v["exchanges"][0]["request"]["uri"], "/v2/", "{name}");
    }
    let (v, _, _) = http(
        "http-10000-headers.pcap",
        &["--max-header-bytes", "1000000"],
    );
    assert_eq!(file(&v)["tcp"]["http_too_many_headers"], 1);
    assert_eq!(v["exchanges"][0]["request"]["uri"], "/v2/");
}

#[test]
fn framing_anomalies() {
    let anomaly = |name: &str, who: &str| {
        let (v, _, _) = http(name, &[]);
        v["exchanges"][0][who].clone()
    };
    let r = anomaly("http-bad-chunk-size.pcap", "response");
    assert_eq!(
        (r["complete"].clone(), r["anomalies"][0].clone()),
        (Value::Bool(false), "bad_chunk_size".into())
    );
    let r = anomaly("http-content-length-and-chunked.pcap", "response");
    assert_eq!(
        (r["body_length"].clone(), r["anomalies"][0].clone()),
        (5.into(), "content_length_and_chunked".into())
    );
    let r = anomaly("http-two-content-lengths.pcap", "request");
    assert_eq!(
        (r["body_length"].clone(), r["anomalies"][0].clone()),
        (2.into(), "conflicting_content_length".into())
    );
    for name in [
        "http-negative-content-length.pcap",
        "http-huge-content-length.pcap",
    ] {
        let r = anomaly(name, "response");
        assert_eq!(
            (r["body_length"].clone(), r["anomalies"][0].clone()),
            (5.into(), "bad_content_length".into()),
            "{name}"
        );
    }
    let (v, _, _) = http("http-endless-chunked.pcap", &["--show-body"]);
    let r = &v["exchanges"][0]["response"];
    assert_eq!(
        (r["complete"].clone(), r["body_length"].clone()),
        (Value::Bool(false), 2_048_000.into())
    );
    assert_eq!(
        r["body"].as_str().map(str::len),
        Some(64 * 1024),
        "only the prefix is kept"
    );
}

#[test]
fn analyze_does_not_trip_on_any_of_them() {
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed"))
        .expect("dir")
        .flatten()
    {
        let p = e.path();
        if !p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            continue;
        }
        let o = run(&["analyze", "--format", "json", p.to_str().expect("path")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{}: {err}", p.display());
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", p.display());
    }
}

/// Every frame of every capture read in the smallest buffer (which must grow for any record
/// larger than it), and read and decoded on a second thread (`-j 2`, batches handed over), is
/// the frame read in the default 4 MiB buffer on one thread, decoded the same, and reading ends
/// the same way.
#[test]
fn a_small_read_buffer_and_the_reading_thread_read_the_same_frames() {
    use capdiag::capture::file::CaptureReader;
    use std::io::Read;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in ["samples", "samples/registry", "tests/malformed"] {
        for e in std::fs::read_dir(root.join(dir)).expect("dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                let mut b = Vec::new();
                std::fs::File::open(&p)
                    .and_then(|mut f| f.read_to_end(&mut b))
                    .expect("read");
                inputs.push((p.display().to_string(), b));
            }
        }
    }
    inputs.sort();
    // And records larger than the small buffer (as loopback captures with offloads hold): a
    // pcap of a 60-byte, a 200,000-byte and a 100-byte record.
    let mut big = Vec::new();
    big.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    big.extend_from_slice(&2u16.to_le_bytes());
    big.extend_from_slice(&4u16.to_le_bytes());
    big.extend_from_slice(&[0; 8]);
    big.extend_from_slice(&262_144u32.to_le_bytes());
    big.extend_from_slice(&1u32.to_le_bytes());
    for (i, len) in [60u32, 200_000, 100].into_iter().enumerate() {
        big.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        big.extend_from_slice(&0u32.to_le_bytes());
        big.extend_from_slice(&len.to_le_bytes());
        big.extend_from_slice(&len.to_le_bytes());
        big.extend((0..len).map(|b| b as u8));
    }
    inputs.push(("large records".to_string(), big));
    #[derive(PartialEq)]
    enum How {
        Default,
        SmallBuffer,
        Thread,
    }
    let read = |b: &[u8], how: How| {
        let c = std::io::Cursor::new(b.to_vec());
        let r = if how == How::SmallBuffer {
            CaptureReader::with_buffer_len(c, 0)
        } else {
            CaptureReader::new(c)
        };
        let Ok(mut r) = r else {
            return None;
        };
        let mut frames = Vec::new();
        let mut see = |f: &capdiag::capture::Frame<'_>| {
            frames.push((f.number, f.ts, f.wire_len, f.data.to_vec()));
        };
        let end = if how == How::Thread {
            // As the commands do: each frame decoded on the reading thread, the decoding
            // detached from the reader's buffer and attached to the batch's copy, which must
            // give what decoding the copy gives.
            use capdiag::decode::decode;
            r.for_each_frame_prefetched(
                |f, _: &mut ()| decode(f).detach(f.data),
                |f, d, _| {
                    let d = d.as_ref().expect("decode's slices lie in the frame");
                    assert_eq!(
                        format!("{:?}", d.attach(f.data)),
                        format!("{:?}", decode(f)),
                        "frame {}",
                        f.number
                    );
                    see(f)
                },
            )
        } else {
            r.for_each_frame(see)
        };
        Some((frames, end.to_string()))
    };
    for (name, b) in &inputs {
        let plain = read(b, How::Default);
        assert!(plain == read(b, How::SmallBuffer), "{name}: small buffer");
        assert!(plain == read(b, How::Thread), "{name}: reading thread");
    }
    assert!(inputs.len() > 20, "{} captures", inputs.len());
    let (frames, end) = read(&inputs.last().expect("big").1, How::Thread).expect("readable");
    let lens: Vec<usize> = frames.iter().map(|f| f.3.len()).collect();
    assert_eq!((lens, end.as_str()), (vec![60, 200_000, 100], "complete"));
}

/// Damaged TLS: never a panic; what could not be read is counted (`tls` in the summary) and the
/// connection listed by `capdiag conns` with what could be.
#[test]
fn damaged_tls_is_counted_and_listed() {
    let conns = |name: &str| -> Value {
        let o = run(&["conns", "--format", "json", &path(name)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(o.status.code(), Some(0), "{name}: {err}");
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    };
    let v = conns("tls-record-too-long.pcap");
    assert_eq!(v["files"][0]["tls"]["not_records"], 1);
    assert_eq!(v["connections"][0]["tls"]["outcome"], "cut");
    let v = conns("tls-handshake-over-limit.pcap");
    assert_eq!(v["files"][0]["tls"]["handshake_limit_hits"], 1);
    let a = run(&["analyze", &path("tls-handshake-over-limit.pcap")]);
    assert!(
        String::from_utf8_lossy(&a.stdout).contains("TLS handshakes not read"),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    // Extensions that run past the message are not read; the hello itself is.
    let v = conns("tls-client-hello-bad-extensions.pcap");
    let t = &v["connections"][0]["tls"];
    assert_eq!(
        (t["client_hello_frame"].as_u64(), t["sni"].is_null()),
        (Some(4), true)
    );
    let v = conns("tls-certificate-not-der.pcap");
    let t = &v["connections"][0]["tls"];
    assert_eq!(t["sni"], "registry.example");
    assert_eq!(t["certificate_frame"], 5);
    assert_eq!(t["certificates"].as_array().map(Vec::len), Some(0));
    assert_eq!(t["certificates_not_read"], 1);
}

#[test]
fn timestamps_at_the_ends_of_pcapng_give_every_output_without_overflow() {
    for (name, findings) in [
        ("pcapng-extreme-timestamps.pcapng", 0),
        ("pcapng-latest-timestamps-http.pcapng", 1),
    ] {
        let p = path(name);
        for args in [
            vec!["analyze", "--format", "html", &p],
            vec!["analyze", "--format", "json", &p],
            vec!["analyze", &p],
            vec!["watch", "-r", &p],
            vec!["conns", &p],
            vec!["http", &p],
        ] {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(o.status.code().is_some_and(|c| c <= 1), "{args:?}: {err}");
        }
        let html =
            String::from_utf8_lossy(&run(&["analyze", "--format", "html", &p]).stdout).into_owned();
        assert_eq!(
            html.matches("<article class=\"finding").count(),
            findings,
            "{name}"
        );
    }
}
