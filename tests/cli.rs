//! The `capdiag` command as a user runs it: exit codes, messages, formats, and what happens
//! with broken input. Damaged captures are made here from committed real ones, so each case
//! says exactly which bytes are wrong.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capdiag"))
}

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel)
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run capdiag")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Writes a file under Cargo's scratch directory for integration tests (`target/tmp`), not the
/// system's temporary directory: `cargo clean` removes it.
fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write tmp");
    p
}

fn no_panic(o: &Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "capdiag panicked: {e}");
}

#[test]
fn lists_exchanges_as_a_table() {
    let o = run(&["http", corpus("zeek/http/get.pcap").to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("/download/CHANGES.bro-aux.txt"), "{out}");
    assert!(out.contains("bro.org"));
    assert!(out.contains("14 frames"), "{out}");
    assert!(out.contains("1 exchange"), "{out}");
}

#[test]
fn json_has_the_documented_fields() {
    let o = run(&[
        "http",
        "--format",
        "json",
        corpus("arkime/http-100-continue.pcap")
            .to_str()
            .expect("path"),
    ]);
    assert!(o.status.success());
    let v = json(&o);
    assert_eq!(v["version"], 1);
    let ex = &v["exchanges"][0];
    assert_eq!(ex["stream"], 0);
    assert_eq!(ex["request"]["method"], "POST");
    assert_eq!(ex["request"]["first_frame"], 4);
    assert_eq!(ex["request"]["frame"], 8);
    assert_eq!(ex["request"]["host"], "example.com");
    assert_eq!(ex["interim"][0]["status"], 100);
    assert_eq!(ex["interim"][0]["frame"], 6);
    assert_eq!(ex["response"]["status"], 404);
    assert_eq!(ex["response"]["frame"], 12);
    assert!(
        ex["response"]["content_type"]
            .as_str()
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert_eq!(v["files"][0]["frames"], 16);
    assert_eq!(v["files"][0]["read"], "complete");
}

#[test]
fn show_body_decodes_gzip() {
    let o = run(&[
        "http",
        "--format",
        "json",
        "--show-body",
        corpus("zeek/http/get-gzip.pcap").to_str().expect("path"),
    ]);
    assert!(o.status.success());
    let v = json(&o);
    let body = v["exchanges"][0]["response"]["body"]
        .as_str()
        .expect("body");
    assert!(
        body.trim_start().starts_with('{'),
        "gzip body not decoded: {body:.80}"
    );
}

#[test]
fn missing_file_is_a_one_line_error_with_exit_2() {
    let o = run(&["http", "/nonexistent/capture.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "capdiag: /nonexistent/capture.pcap: No such file or directory (os error 2)"
    );
    no_panic(&o);
}

#[test]
fn empty_file_not_a_capture_and_directory() {
    let empty = tmp("empty.pcap", b"");
    let o = run(&["http", empty.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("empty file"), "{}", stderr(&o));

    let text = tmp("notes.pcap", b"this is not a capture\n");
    let o = run(&["http", text.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a pcap or pcapng capture (it starts with 74 68 69 73)"),
        "{}",
        stderr(&o)
    );

    let gz = tmp("c.pcap.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let o = run(&["http", gz.to_str().expect("path")]);
    assert!(stderr(&o).contains("gzip-compressed"), "{}", stderr(&o));

    let short = tmp("short.pcap", &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]);
    let o = run(&["http", short.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("too short"), "{}", stderr(&o));

    let dir = std::env::temp_dir();
    let o = run(&["http", dir.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn one_bad_file_among_good_ones_still_analyses_the_good_ones() {
    let o = run(&[
        "http",
        "--format",
        "json",
        "/nonexistent.pcap",
        corpus("zeek/http/get.pcap").to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["exchanges"].as_array().map(Vec::len), Some(1));
    assert!(
        v["exchanges"][0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("get.pcap"))
    );
}

/// Record boundaries of a little-endian microsecond pcap: (offset, caplen).
fn records(b: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
        v.push((off, caplen));
        off += 16 + caplen;
    }
    v
}

#[test]
fn capture_cut_mid_record_keeps_what_was_read() {
    let full = std::fs::read(corpus("zeek/http/get.pcap")).expect("read");
    let recs = records(&full);
    // Cut in the middle of the data of frame 12 (after the response, frame 9, completed).
    let (off, caplen) = recs[11];
    let cut = tmp("cut.pcap", &full[..off + 16 + caplen / 2]);
    let o = run(&["http", "--format", "json", cut.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["files"][0]["frames"], 11);
    assert!(
        v["files"][0]["read"]
            .as_str()
            .is_some_and(|r| r.contains("cut off in the middle of a record"))
    );
    assert_eq!(v["exchanges"][0]["response"]["frame"], 9);
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    no_panic(&o);
}

#[test]
fn oversized_record_stops_reading_with_a_reason() {
    let mut b = std::fs::read(corpus("zeek/http/get.pcap")).expect("read");
    let (off, _) = records(&b)[5];
    b[off + 8..off + 12].copy_from_slice(&300_000u32.to_le_bytes());
    let bad = tmp("oversized.pcap", &b);
    let o = run(&["http", "--format", "json", bad.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(
        v["files"][0]["frames"], 5,
        "frames before the bad record are analysed"
    );
    let read = v["files"][0]["read"].as_str().expect("read");
    assert!(read.contains("record 6 claims 300016 bytes"), "{read}");
    no_panic(&o);
}

#[test]
fn snaplen_truncated_frames_are_counted_and_reassembled_around() {
    let o = run(&["http", "--format", "json", corpus("suricata-verify/tcp-rst-unacked-stream-10/TLPW1-tcp-174.56.47.59-10.3.11.101-tcp-80-49309.pcap").to_str().expect("path")]);
    assert!(o.status.success());
    let v = json(&o);
    assert!(
        v["files"][0]["snaplen_truncated_frames"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        v["files"][0]["tcp"]["gap_bytes"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(v["exchanges"][0]["request"]["method"], "GET");
}

#[test]
fn reads_standard_input() {
    let data = std::fs::read(corpus("zeek/http/get.pcap")).expect("read");
    let mut child = bin()
        .args(["http", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Write in small pieces, as a pipe from tcpdump would.
    let mut stdin = child.stdin.take().expect("stdin");
    for chunk in data.chunks(7) {
        stdin.write_all(chunk).expect("write");
    }
    drop(stdin);
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success());
    assert_eq!(json(&o)["exchanges"][0]["response"]["frame"], 9);
}

#[test]
fn pcapng_with_a_pcap_name_is_read_by_its_magic() {
    let o = run(&[
        "http",
        "--format",
        "json",
        corpus("ndpi/webdav.pcap").to_str().expect("path"),
    ]);
    assert!(o.status.success());
    let v = json(&o);
    assert_eq!(v["files"][0]["format"], "pcapng");
    assert!(v["exchanges"].as_array().is_some_and(|a| a.len() > 10));
}

#[test]
fn unsupported_link_type_is_named_once_not_an_error() {
    let mut b = std::fs::read(corpus("zeek/http/get.pcap")).expect("read");
    b[20..24].copy_from_slice(&147u32.to_le_bytes());
    let p = tmp("user0.pcap", &b);
    let o = run(&["http", p.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("skipped 14 frames: link type LINKTYPE 147 is not decoded (first: frame 1)"),
        "{out}"
    );
}

#[test]
fn closed_pipe_is_not_an_error() {
    let mut child = bin()
        .args(["http", corpus("ndpi/webdav.pcap").to_str().expect("path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0));
    no_panic(&o);
}

/// An Ethernet/IPv4/TCP packet between 192.0.2.1:`port` and 192.0.2.2:80 (`to_server` says
/// which way), as a pcap record.
fn record(port: u16, to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (c, s) = ([192, 0, 2, 1], [192, 0, 2, 2]);
    let (src, dst, sport, dport) = if to_server {
        (c, s, port, 80)
    } else {
        (s, c, 80, port)
    };
    let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0];
    p.extend(((40 + payload.len()) as u16).to_be_bytes());
    p.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(ack.to_be_bytes());
    p.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend(payload);
    let mut r = 1_700_000_000u32.to_le_bytes().to_vec();
    r.extend(0u32.to_le_bytes());
    r.extend((p.len() as u32).to_le_bytes());
    r.extend((p.len() as u32).to_le_bytes());
    r.extend(p);
    r
}

/// `tcpdump -w - | capdiag http - | head`: once the reader of capdiag's output has gone, the
/// input stops being read, even when it never ends.
#[test]
fn a_closed_pipe_stops_the_reading_of_an_endless_input() {
    for args in [["http", "-j", "1"], ["http", "-j", "2"]] {
        for format in ["table", "json"] {
            let mut child = bin()
                .args(args)
                .args(["--format", format, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            drop(child.stdout.take());
            let mut stdin = child.stdin.take().expect("stdin");
            let feeder = std::thread::spawn(move || {
                let mut header = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
                header.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]);
                let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
                let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                let mut sent = 0u64;
                let mut chunk = header;
                for i in 0u32.. {
                    let port = 1024 + (i % 60_000) as u16;
                    chunk.extend(record(port, true, 1, 0, 0x02, b""));
                    chunk.extend(record(port, false, 9, 2, 0x12, b""));
                    chunk.extend(record(port, true, 2, 10, 0x18, req));
                    chunk.extend(record(port, false, 10, 2 + req.len() as u32, 0x18, resp));
                    if chunk.len() > 64 * 1024 {
                        if stdin.write_all(&chunk).is_err() {
                            return sent;
                        }
                        sent += chunk.len() as u64;
                        chunk.clear();
                    }
                }
                sent
            });
            let start = std::time::Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().expect("wait") {
                    break Some(s);
                }
                if start.elapsed() > std::time::Duration::from_secs(60) {
                    let _ = child.kill();
                    break None;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let sent = feeder.join().expect("feeder");
            assert!(
                status.is_some(),
                "{args:?} {format}: still reading after 60 s ({sent} bytes fed)"
            );
            let o = child.wait_with_output().expect("wait");
            assert_eq!(
                o.status.code(),
                Some(0),
                "{args:?} {format}: {}",
                stderr(&o)
            );
            no_panic(&o);
        }
    }
}

/// `tcpdump -U -w - | capdiag watch -r -` on a link that goes quiet: the finding that waits out
/// its delay (a refused connection's retries, 2 s) comes while the pipe is still open, as in a
/// live watch, not only when the input ends; nothing is lost across the pauses. A stored
/// capture replayed through a pipe that stalls is not live: its time moves on only with its
/// frames, so the finding comes with the end of the input, as from the file.
#[test]
fn a_quiet_pipe_lets_time_move_on_when_it_is_live() {
    // samples/connect/refused.pcap (little-endian pcap): its header and first four frames,
    // two refused connections; the third attempt (frame 5) never comes.
    let data = std::fs::read(repo("samples/connect/refused.pcap")).expect("sample");
    let mut records = Vec::new();
    let mut at = 24;
    for _ in 0..4 {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes"));
        records.push(at);
        at += 16 + caplen as usize;
    }
    let stored = data[..at].to_vec();
    // As captured now: the same frames, their times moved so that the last one is now.
    let mut live = stored.clone();
    let last = u32::from_le_bytes(live[records[3]..records[3] + 4].try_into().expect("4"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    for &r in &records {
        let t = u32::from_le_bytes(live[r..r + 4].try_into().expect("4"));
        live[r..r + 4].copy_from_slice(&(t + (now - last)).to_le_bytes());
    }
    for (input, is_live) in [(&live, true), (&stored, false)] {
        for format in ["ndjson", "text"] {
            if !is_live && format == "text" {
                continue;
            }
            let what = format!("{format}, live {is_live}");
            let mut child = bin()
                .args(["watch", "--format", format, "-r", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().expect("stdin");
            // A slow writer: the header and the first frame, a pause, then the rest.
            stdin.write_all(&input[..40]).expect("write");
            std::thread::sleep(std::time::Duration::from_millis(1200));
            stdin.write_all(&input[40..]).expect("write");
            let mut out = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
                }
                all
            });
            let start = std::time::Instant::now();
            let patience = if is_live { 20 } else { 7 };
            let mut seen = String::new();
            while !seen.contains("tcp-connect-refused") && start.elapsed().as_secs() < patience {
                if let Ok(s) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    seen = s;
                }
            }
            let waited = start.elapsed();
            assert_eq!(
                seen.contains("tcp-connect-refused"),
                is_live,
                "{what}: after {waited:?} with the pipe open: {seen}"
            );
            assert!(!seen.contains("summary"), "{what}: the watch ended early");
            drop(stdin);
            let status = child.wait().expect("wait");
            let all = String::from_utf8_lossy(&reader.join().expect("reader")).into_owned();
            assert_eq!(status.code(), Some(1), "{what}: {all}");
            let once = if format == "ndjson" {
                r#""rule":"tcp-connect-refused""#
            } else {
                "ERROR [tcp-connect-refused]"
            };
            assert_eq!(all.matches(once).count(), 1, "{what}: {all}");
            if format == "ndjson" {
                // The same evidence as the whole file gives: frames 1 to 4, all read.
                assert!(all.contains(r#""frames":[1,2,3,4]"#), "{what}: {all}");
                assert!(all.contains(r#""frames":4,"#), "{what}: {all}");
                assert!(all.contains(r#""stopped_by":"end""#), "{what}: {all}");
            }
        }
    }
}

/// Output that cannot be written (a full disk) is a one-line error with exit 2 for every
/// command that prints, never a panic.
#[test]
fn a_full_disk_is_an_error_not_a_panic() {
    let sample = corpus("zeek/http/get.pcap");
    let sample = sample.to_str().expect("path");
    for args in [
        vec!["rules"],
        vec!["explain", "s3-error-not-xml"],
        vec!["http", sample],
        vec!["http", "--format", "json", sample],
        vec!["analyze", sample],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let o = bin()
            .args(&args)
            .stdout(Stdio::from(full))
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("writing output: No space left on device"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
    // Nor is a standard error that cannot be written: the exit code still tells.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = bin()
        .args(["http", "/nonexistent/x.pcap"])
        .stderr(Stdio::from(full))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    let o = run(&["http"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["http", "--format", "xml", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    for cmd in ["http", "analyze"] {
        let o = run(&[cmd, "-", "-"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("standard input can be read only once"),
            "{}",
            stderr(&o)
        );
    }
    // Out of range, said before anything is opened (4096 MiB does not fit libpcap's buffer
    // size; it used to wrap around).
    for args in [
        ["watch", "-i", "lo", "--buffer-mib", "4096"],
        ["watch", "-i", "lo", "--snaplen", "300000"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("is not in"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn pcapng_block_with_a_bad_length_stops_with_a_reason() {
    let mut b = std::fs::read(corpus("zeek/http/zeek-image-1080-80-x.pcapng")).expect("read");
    // Walk to the fourth block and give it an impossible total length.
    let mut off = 0;
    for _ in 0..3 {
        off += u32::from_le_bytes(b[off + 4..off + 8].try_into().expect("4 bytes")) as usize;
    }
    b[off + 4..off + 8].copy_from_slice(&7u32.to_le_bytes());
    let p = tmp("badblock.pcapng", &b);
    let o = run(&["http", "--format", "json", p.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    let read = v["files"][0]["read"].as_str().expect("read");
    assert!(read.contains("impossible length of 7 bytes"), "{read}");
    assert_eq!(v["files"][0]["frames"], 1);
    no_panic(&o);
}

#[test]
fn pcapng_with_interfaces_of_different_link_types() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/mixed-linktypes.pcapng");
    let o = run(&["http", "--format", "json", p.to_str().expect("path")]);
    assert!(o.status.success());
    let v = json(&o);
    assert_eq!(
        v["files"][0]["link_types"],
        serde_json::json!(["EN10MB (1)", "LINUX_SLL2 (276)"])
    );
    let statuses: Vec<u64> = v["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .filter_map(|e| e["response"]["status"].as_u64())
        .collect();
    assert!(
        statuses.contains(&307) && statuses.contains(&401),
        "{statuses:?}"
    );
}

/// `-j 2` (the file read on a second thread) gives byte for byte the output of `-j 1`: same
/// findings, frames, exchanges and summaries, same messages, same exit code, on every sample
/// and every malformed capture.
#[test]
fn reading_on_a_second_thread_changes_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["samples", "samples/registry", "tests/malformed"] {
        for e in std::fs::read_dir(root.join(dir)).expect("dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() > 25, "{} captures", files.len());
    let mut findings = 0;
    for f in &files {
        let f = f.to_str().expect("path");
        for cmd in [
            &["analyze", "--format", "json", "--fail-on", "info"][..],
            &["http", "--format", "json"][..],
        ] {
            let one = run(&[cmd, &["-j", "1", f]].concat());
            let two = run(&[cmd, &["-j", "2", f]].concat());
            no_panic(&two);
            assert_eq!(
                (one.status.code(), stdout(&one), stderr(&one)),
                (two.status.code(), stdout(&two), stderr(&two)),
                "{} {f}",
                cmd[0]
            );
            if cmd[0] == "analyze" && two.status.code() == Some(1) {
                findings += 1;
            }
        }
    }
    // The comparison covered captures with findings, not only empty reports.
    assert!(findings >= 5, "{findings} captures with findings");
}

#[test]
fn threads_outside_one_or_two_are_refused() {
    let f = corpus("zeek/http/get.pcap");
    let o = run(&["analyze", "-j", "3", f.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));
}

/// The progress bar: on a terminal, for a file of 64 MiB or more, it shows bytes read of the
/// total, the rate and the time left; never with `--format json`, never when standard error
/// is not a terminal. The terminal is a pseudo-terminal made by `script` (util-linux).
#[test]
fn progress_bar_only_on_a_terminal_and_never_with_json() {
    // 1,000,000 frames of 60 bytes that are not IP (76 MB): read in a fraction of a second,
    // with the bar moved every 65,536 frames.
    let mut b = Vec::with_capacity(76_000_024);
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&[
        2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ]);
    for i in 0..1_000_000u32 {
        for v in [i / 1000, 0, 60, 60] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[0u8; 60]);
    }
    let big = tmp("progress-76mb.pcap", &b);
    let big = big.to_str().expect("utf-8 path");
    let on_a_terminal = |args: &str| {
        let cmd = format!("{} {args} {big}", env!("CARGO_BIN_EXE_capdiag"));
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("run script (util-linux)");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let human = on_a_terminal("analyze");
    assert!(
        human.contains("MiB/72.48 MiB [") && human.contains("MiB/s") && human.contains("left"),
        "no progress bar on a terminal: {human}"
    );
    assert!(human.contains("1000000 frames"), "{human}");
    let json_out = on_a_terminal("analyze --format json");
    assert!(
        !json_out.contains("left") && !json_out.contains("MiB/s"),
        "a bar with --format json: {json_out}"
    );
    let piped = run(&["analyze", big]);
    assert!(piped.status.success());
    assert!(
        !stderr(&piped).contains("left") && !stdout(&piped).contains("left"),
        "a bar on a pipe: {}",
        stderr(&piped)
    );
}

/// `capdiag conns`: a row per connection with what it carried, the same with one thread or
/// two, JSON that parses, and the usual messages and exit codes for what cannot be read.
#[test]
fn conns_lists_connections_and_what_they_carried() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tls/untrusted-curl.pcap");
    let s = sample.to_str().expect("path");
    let o = run(&["conns", s]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("10.87.0.1:") && out.contains("→ 10.87.0.2:8443") && out.contains("RSTO"),
        "{out}"
    );
    assert!(
        out.contains("TLS 1.3 registry.lab: rejected by the client (unknown_ca, frame 8)"),
        "{out}"
    );
    assert!(
        out.contains("tls: 1 connection: 0 established, 1 rejected by the client"),
        "{out}"
    );
    let one = run(&["conns", "--format", "json", "-j", "1", s]);
    let two = run(&["conns", "--format", "json", "-j", "2", s]);
    assert_eq!(one.stdout, two.stdout);
    let v = json(&one);
    assert_eq!(v["connections"][0]["tls"]["outcome"], "rejected_by_client");
    assert_eq!(
        v["connections"][0]["tls"]["alerts"][0]["description"],
        "unknown_ca"
    );
    // Nothing of TCP in it; and a file that is not a capture.
    let udp_only = tmp("conns-empty.pcap", &{
        let mut b = Vec::new();
        b.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        b.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]);
        b
    });
    let o = run(&["conns", udp_only.to_str().expect("path")]);
    assert!(
        stdout(&o).contains("(no TCP connections)"),
        "{}",
        stdout(&o)
    );
    let o = run(&["conns", corpus("SOURCES.md").to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

/// The secrets of a key log, as hex (the third field of each line).
fn secrets_of(key_log: &str) -> Vec<String> {
    key_log
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

#[test]
fn tls_secrets_never_reach_the_output() {
    let keys = repo("samples/tls-keys/presigned-403-tls13.keys");
    let cap = repo("samples/tls-keys/presigned-403-tls13.pcap");
    let text = std::fs::read_to_string(&keys).expect("key log");
    let secrets = secrets_of(&text);
    assert!(secrets.len() >= 8, "{secrets:?}");
    // A key log with a malformed line holding a secret, and one of the wrong length.
    let bad = tmp(
        "bad.keys",
        format!(
            "{text}CLIENT_RANDOM zz {}\nCLIENT_RANDOM {} {}00\n",
            secrets[0],
            "ab".repeat(32),
            secrets[1]
        )
        .as_bytes(),
    );
    let k = keys.to_str().expect("path");
    let b = bad.to_str().expect("path");
    let c = cap.to_str().expect("path");
    for args in [
        vec!["analyze", "--tls-keylog", k, c],
        vec!["analyze", "--format", "json", "--tls-keylog", b, c],
        vec![
            "http",
            "--format",
            "json",
            "--show-body",
            "--tls-keylog",
            k,
            c,
        ],
        vec!["conns", "--format", "json", "--tls-keylog", k, c],
        vec!["conns", "--tls-keylog", b, c],
        vec!["watch", "--format", "ndjson", "--tls-keylog", b, "-r", c],
    ] {
        let o = run(&args);
        no_panic(&o);
        let all = format!("{}{}", stdout(&o), stderr(&o)).to_ascii_lowercase();
        for s in &secrets {
            assert!(!all.contains(s.as_str()), "{args:?} shows a secret");
        }
        assert!(!all.contains("zz"), "{args:?} shows a malformed line");
    }
    // The malformed lines are named by number, and decryption goes on with the good ones.
    let o = run(&["http", "--format", "json", "--tls-keylog", b, c]);
    let n = text.lines().count();
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "bad.keys: line {}: the client random is not 64 hex digits",
            n + 1
        )) && err.contains(&format!(
            "line {}: a CLIENT_RANDOM master secret is 48 bytes",
            n + 2
        )),
        "{err}"
    );
    assert_eq!(json(&o)["exchanges"].as_array().map(Vec::len), Some(2));
    // A key log that cannot be read is an error before anything is read.
    let o = run(&["analyze", "--tls-keylog", "/nonexistent/keys", c]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("capdiag: --tls-keylog: /nonexistent/keys: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn extract_with_keys_embeds_only_the_extracted_connections_secrets() {
    let keys = repo("samples/tls-keys/presigned-403-tls13.keys");
    let cap = repo("samples/tls-keys/presigned-403-tls13.pcap");
    let out = tmp("one-stream.pcapng", b"");
    let (k, c, w) = (
        keys.to_str().expect("path"),
        cap.to_str().expect("path"),
        out.to_str().expect("path"),
    );
    // Stream 1 only (the presigned GET and its 403): its handshake and records, its secrets.
    let o = run(&[
        "extract",
        "--tls-keylog",
        k,
        "--with-keys",
        "--stream",
        "1",
        c,
        "-w",
        w,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the secrets of 1 TLS connection"),
        "{}",
        stderr(&o)
    );
    let written = std::fs::read(&out).expect("written");
    let text = String::from_utf8_lossy(&written).to_ascii_lowercase();
    let key_log = std::fs::read_to_string(&keys).expect("key log");
    let randoms: std::collections::BTreeSet<String> = key_log
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(randoms.len(), 2, "two connections in the key log");
    let inside: Vec<&String> = randoms
        .iter()
        .filter(|r| text.contains(r.as_str()))
        .collect();
    assert_eq!(inside.len(), 1, "only the extracted connection's secrets");
    // The extract, read with no option, decrypts to the same exchange.
    let o = run(&["http", "--format", "json", w]);
    let v = json(&o);
    let ex = v["exchanges"].as_array().expect("exchanges");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0]["response"]["status"], 403);
    // A finding made from decrypted traffic suggests the extract that opens decrypted.
    let o = run(&["analyze", "--tls-keylog", k, c]);
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains("Extract evidence:"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.ends_with(&format!(
            "-w presigned-url-403-1.pcapng --tls-keylog {k} --with-keys --frames 9,14,23,27"
        )),
        "{line}"
    );
    let plain = repo("samples/registry/presigned-403.pcap");
    let o = run(&["analyze", plain.to_str().expect("path")]);
    assert!(!stdout(&o).contains("--with-keys"));
    // Frames before any handshake (the SYNs): no secret goes with them.
    let early = tmp("syns.pcapng", b"");
    let e = early.to_str().expect("path");
    let o = run(&[
        "extract",
        "--tls-keylog",
        k,
        "--with-keys",
        "--frames",
        "1-3",
        c,
        "-w",
        e,
    ]);
    assert!(
        stderr(&o).contains("the secrets of 0 TLS connections"),
        "{}",
        stderr(&o)
    );
    let written =
        String::from_utf8_lossy(&std::fs::read(&early).expect("written")).to_ascii_lowercase();
    assert!(randoms.iter().all(|r| !written.contains(r.as_str())));
}

#[test]
fn suites_not_decrypted_are_counted_and_named() {
    // A public capture with TLS 1.2 connections on RSA-AES128-CBC-SHA (0x002f), read with a key
    // log (of other connections): each is counted and named, none is a decryption failure.
    let cap = corpus("arkime/arkime_synthetic.pcap");
    let keys = repo("samples/tls-keys/healthy-tls13-aes128.keys");
    let (c, k) = (cap.to_str().expect("path"), keys.to_str().expect("path"));
    let o = run(&["conns", "--format", "json", "--tls-keylog", k, c]);
    let v = json(&o);
    let tls = &v["files"][0]["tls"];
    assert!(tls["unsupported_suite"].as_u64() >= Some(4), "{tls}");
    assert_eq!(tls["decryption_failed"], 0, "{tls}");
    let cbc = v["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .filter(|c| {
            c["tls"]["cipher_suite"]
                .as_str()
                .is_some_and(|s| s.contains("CBC"))
                && c["tls"]["decryption"]["status"] == "unsupported_suite"
        })
        .count();
    assert!(cbc >= 4, "{cbc}");
    let o = run(&["conns", "--tls-keylog", k, c]);
    assert!(stdout(&o).contains("unsupported suite 0x002f (CBC, RC4 or NULL)"));
    assert!(stdout(&o).contains("with a cipher suite not decrypted (CBC, CCM)"));
}

#[test]
fn version_says_the_commit_and_the_libpcap_it_was_built_with() {
    let o = run(&["--version"]);
    let v = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        v.starts_with(&format!("capdiag {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    // A checkout's commit, as git names it; the libpcap version pkg-config gave.
    let commit = v
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_default();
    let (hash, changed) = match commit.strip_suffix(" with local changes") {
        Some(h) => (h, true),
        None => (commit, false),
    };
    assert!(
        hash == "unknown" || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{v}"
    );
    // "with local changes" exactly when the sources differ from the commit (git asked again).
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no", "--"])
        .args(["src", "build.rs", "Cargo.toml", "Cargo.lock"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(s) = status
        && s.status.success()
        && hash != "unknown"
    {
        assert_eq!(changed, !s.stdout.is_empty(), "{v}");
    }
    let pcap = v
        .split("libpcap ")
        .nth(1)
        .unwrap_or_default()
        .trim_end()
        .trim_end_matches(')');
    assert!(pcap.starts_with("1.") || pcap == "unknown", "{v}");
}

#[test]
fn completions_are_scripts_the_shells_parse() {
    for (shell, check) in [
        ("bash", Some(("bash", vec!["-n"]))),
        ("zsh", Some(("zsh", vec!["-n"]))),
        ("fish", Some(("fish", vec!["--no-execute"]))),
        ("elvish", None),
        ("powershell", None),
    ] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for word in ["analyze", "watch", "format", "tls-keylog", "no-diagram"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        let Some((program, args)) = check else {
            continue;
        };
        // bash is always there; zsh and fish are checked where installed.
        if program != "bash" && Command::new(program).arg("--version").output().is_err() {
            continue;
        }
        let path = tmp(&format!("capdiag.{shell}"), script.as_bytes());
        let c = Command::new(program)
            .args(&args)
            .arg(&path)
            .output()
            .expect(program);
        assert!(
            c.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&c.stderr)
        );
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_man_page_renders_without_warnings() {
    let o = run(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq \\(aq") || page.contains(".TH capdiag 1"),
        "{page}"
    );
    for word in ["analyze", "watch", "extract", "completions"] {
        assert!(page.contains(word), "no {word}");
    }
    let mut pages = vec![("capdiag".to_string(), page)];
    for c in [
        "analyze",
        "watch",
        "http",
        "conns",
        "extract",
        "rules",
        "explain",
        "completions",
        "man",
    ] {
        let o = run(&["man", c]);
        assert!(o.status.success(), "{c}: {}", stderr(&o));
        pages.push((format!("capdiag-{c}"), stdout(&o)));
    }
    assert!(
        pages[1].1.contains("tls\\-keylog") && pages[1].1.contains("no\\-diagram"),
        "{}",
        pages[1].1
    );
    for (name, page) in &pages {
        let path = tmp(&format!("{name}.1"), page.as_bytes());
        // groff with every warning on: the page must give none.
        let g = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff (Debian: groff-base) renders the page");
        assert!(
            g.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&g.stderr)
        );
        assert!(
            g.stderr.is_empty(),
            "{name}: groff: {}",
            String::from_utf8_lossy(&g.stderr)
        );
    }
    let o = run(&["man", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no command 'nosuch'"), "{}", stderr(&o));
}
