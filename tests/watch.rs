//! End-to-end test of `capdiag watch` on live traffic, in two network namespaces this test
//! creates and removes (addresses 10.79.0.0/24 and 10.79.1.0/24 exist only inside them).
//!
//! The server namespace runs nginx: `/v2/` answers 401 with a Bearer realm at 10.79.1.5, an
//! address routed into the server namespace, which does not forward, so the client's SYNs to it
//! are silently dropped; any other path answers nginx's HTML 404, here to S3-signed requests
//! (`curl --aws-sigv4`). `capdiag watch -i <veth> --format ndjson -w FILE` runs in the client
//! namespace; the test waits for both findings on its output, then stops it, and checks that
//! `capdiag analyze FILE` finds the same rules at the same key frames.
//!
//! Needs root, iproute2, nginx and curl: `.ci/run` installs them and runs this test with
//! `cargo test -- --include-ignored`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Lab {
    client: String,
    server: String,
    dir: std::path::PathBuf,
    nginx_pid: std::path::PathBuf,
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?} failed");
}

impl Lab {
    fn new() -> Lab {
        // Each test's lab has names of its own: tests run at the same time.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("{}{}", std::process::id(), (b'a' + n as u8) as char);
        let lab = Lab {
            client: format!("cdw{id}c"),
            server: format!("cdw{id}s"),
            dir: std::env::temp_dir().join(format!("capdiag-watch-{id}")),
            nginx_pid: std::env::temp_dir().join(format!("capdiag-watch-{id}/nginx.pid")),
        };
        std::fs::create_dir_all(&lab.dir).expect("tmp dir");
        let (c, s) = (lab.client.as_str(), lab.server.as_str());
        sh(&["ip", "netns", "add", c]);
        sh(&["ip", "netns", "add", s]);
        sh(&["ip", "-n", c, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", s, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            s,
        ]);
        sh(&["ip", "-n", c, "addr", "add", "10.79.0.1/24", "dev", "eth0"]);
        sh(&["ip", "-n", s, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
        sh(&["ip", "-n", c, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", s, "link", "set", "eth0", "up"]);
        // The realm's network is routed to the server namespace, which does not forward:
        // packets to it are dropped without an answer.
        sh(&[
            "ip",
            "-n",
            c,
            "route",
            "add",
            "10.79.1.0/24",
            "via",
            "10.79.0.2",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
        ]);
        let d = lab.dir.display();
        // A certificate for the TLS port (curl is told not to check it).
        sh(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=registry.lab",
            "-keyout",
            lab.dir.join("tls.key").to_str().expect("path"),
            "-out",
            lab.dir.join("tls.crt").to_str().expect("path"),
        ]);
        let conf = format!(
            r#"daemon on;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 10.79.0.2:80;
    listen 10.79.0.2:443 ssl;
    ssl_certificate {d}/tls.crt;
    ssl_certificate_key {d}/tls.key;
    location /v2/ {{
      default_type application/json;
      add_header Www-Authenticate 'Bearer realm="http://10.79.1.5/token",service="lab-registry"' always;
      add_header Docker-Distribution-Api-Version registry/2.0 always;
      return 401 '{{"errors":[{{"code":"UNAUTHORIZED"}}]}}';
    }}
    location = /big {{ default_type application/octet-stream; alias {d}/big; }}
    location = /v2/lab/small/blobs/sha256:big {{
      default_type application/octet-stream; alias {d}/big;
      send_timeout 2s; reset_timedout_connection on;
    }}
    location / {{ return 404; }}
  }}
}}
"#
        );
        // 32 MiB to send while a watch is stopped, to fill its buffer.
        std::fs::write(lab.dir.join("big"), vec![0x5a; 32 << 20]).expect("big file");
        let conf_path = lab.dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "nginx",
            "-c",
            conf_path.to_str().expect("path"),
        ]);
        lab
    }

    /// `curl -s ARGS` in the client namespace, not yet run.
    fn curl_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client, "curl", "-s"])
            .args(args);
        c
    }

    /// `curl -s ARGS` in the client namespace: what it printed.
    fn curl(&self, args: &[&str]) -> String {
        let o = self.curl_command(args).output().expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `curl -s ARGS` in the client namespace, started, its output dropped.
    fn spawn_curl(&self, args: &[&str]) -> Child {
        self.curl_command(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("curl")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.nginx_pid) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `capdiag watch` running in the lab's client namespace: started with `args`, once it says it
/// is capturing on eth0; its output lines arrive on `lines` as they are printed.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Watch {
    fn start(lab: &Lab, args: &[&std::ffi::OsStr]) -> Watch {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.client,
                env!("CARGO_BIN_EXE_capdiag"),
                "watch",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start capdiag watch");
        // Wait until it is capturing.
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        // Notes may come first (a key log that does not exist yet).
        let mut line = String::new();
        for _ in 0..4 {
            line.clear();
            err.read_line(&mut line).expect("read stderr");
            if !line.starts_with("capdiag: note: ") {
                break;
            }
        }
        assert!(line.contains("watching eth0"), "{line}");
        // Lines of output, as they come.
        let (tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            reader,
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn watch_reports_findings_live_and_its_file_gives_the_same_ones() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let pcap = lab.dir.join("watch.pcap");
    let Watch {
        child: mut watch,
        lines: rx,
        reader,
    } = Watch::start(
        &lab,
        &[
            "-i".as_ref(),
            "eth0".as_ref(),
            "--format".as_ref(),
            "ndjson".as_ref(),
            "-w".as_ref(),
            pcap.as_os_str(),
        ],
    );
    let start = Instant::now();
    let mut pending: Vec<Value> = Vec::new();
    let body = lab.curl(&["http://10.79.0.2/v2/"]);
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    // The client follows the realm: its SYNs go unanswered (curl gives up after 4 s). The
    // finding is conclusive 2.5 s after the first SYN; it must be printed within about a
    // second of that.
    let realm_started = Instant::now();
    let mut realm_curl = lab.spawn_curl(&[
        "--connect-timeout",
        "4",
        "http://10.79.1.5/token?service=lab-registry",
    ]);
    let mut realm_finding_after = None;
    while realm_finding_after.is_none() && realm_started.elapsed() < Duration::from_secs(10) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
            let v: Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["rule"], "auth-realm-unreachable", "{l}");
            realm_finding_after = Some(realm_started.elapsed());
            pending.push(v);
        }
    }
    let after = realm_finding_after.expect("the realm finding within 10 s");
    eprintln!(
        "realm finding {:.2} s after the first SYN",
        after.as_secs_f64()
    );
    assert!(
        after < Duration::from_millis(3700),
        "printed {after:?} after the first SYN (conclusive at 2.5 s)"
    );
    let _ = realm_curl.wait();
    let html = lab.curl(&[
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        "AKIDLAB:secretlab",
        "http://10.79.0.2/bucket/key",
    ]);
    assert!(html.contains("<html>"), "{html}");
    let mut live: Vec<Value> = pending;
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["type"], "finding", "{l}");
            assert_eq!(v["drops_during_evidence"], 0, "{l}");
            eprintln!(
                "finding after {:.1} s: {} key frame {}",
                start.elapsed().as_secs_f64(),
                v["rule"],
                v["key_frame"]
            );
            live.push(v);
        }
    }
    let rules: Vec<&str> = live.iter().filter_map(|v| v["rule"].as_str()).collect();
    assert!(
        rules.contains(&"auth-realm-unreachable") && rules.contains(&"s3-error-not-xml"),
        "printed before the stop: {rules:?}"
    );
    // Stop it as a person would.
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let status = watch.wait().expect("wait");
    let _ = reader.join();
    let summary: Vec<String> = rx.try_iter().collect();
    let last: Value =
        serde_json::from_str(summary.last().expect("summary line")).expect("summary JSON");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["stopped_by"], "signal");
    assert_eq!(last["kernel"]["dropped_by_kernel"], 0);
    assert_eq!(status.code(), Some(1), "findings of error severity: exit 1");
    // The file it wrote gives the same findings at the same frames.
    let o = Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .args(["analyze", "--format", "json"])
        .arg(&pcap)
        .output()
        .expect("analyze");
    let offline: Value = serde_json::from_slice(&o.stdout).expect("analyze JSON");
    let offline = offline["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(offline.len(), live.len(), "{offline:#?}");
    assert_eq!(
        offline
            .first()
            .and_then(|f| f["frames"].as_array())
            .map(|_| ()),
        Some(())
    );
    for f in &live {
        let same = offline
            .iter()
            .find(|g| g["rule"] == f["rule"] && g["key_frame"] == f["key_frame"])
            .unwrap_or_else(|| {
                panic!(
                    "offline has no {} at key frame {}: {offline:#?}",
                    f["rule"], f["key_frame"]
                )
            });
        assert_eq!(same["frames"], f["frames"], "{}", f["rule"]);
    }

    // `--snaplen 0` is tcpdump's "whole packets"; a summary that cannot be written (a full
    // disk) is an error, exit 2, not silence.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let watch = Command::new("ip")
        .args(["netns", "exec", &lab.client, env!("CARGO_BIN_EXE_capdiag")])
        .args([
            "watch",
            "-i",
            "eth0",
            "--snaplen",
            "0",
            "-c",
            "4",
            "--format",
            "ndjson",
        ])
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capdiag watch");
    std::thread::sleep(Duration::from_millis(500));
    let body = lab.curl(&["http://10.79.0.2/v2/"]);
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    let o = watch.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("writing output: No space left on device"),
        "{err}"
    );
    assert!(!err.contains("snaplen"), "{err}");
}

/// Packets the kernel drops are said as they happen: the watch is stopped (SIGSTOP) while 32
/// MiB cross the link, so its 1 MiB buffer overflows; once it runs again, a `drops` line comes
/// within a couple of seconds, before the summary, and the drops it reports add up to the
/// summary's count.
#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn kernel_drops_are_said_as_they_happen() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let Watch {
        child: mut watch,
        lines: rx,
        reader,
    } = Watch::start(
        &lab,
        &[
            "-i".as_ref(),
            "eth0".as_ref(),
            "--format".as_ref(),
            "ndjson".as_ref(),
            "--buffer-mib".as_ref(),
            "1".as_ref(),
        ],
    );
    let pid = watch.id().to_string();
    sh(&["kill", "-STOP", &pid]);
    let n = lab.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "http://10.79.0.2/big",
    ]);
    assert_eq!(n.trim(), (32u64 << 20).to_string());
    sh(&["kill", "-CONT", &pid]);
    let resumed = Instant::now();
    let mut said: Option<Value> = None;
    while said.is_none() && resumed.elapsed() < Duration::from_secs(5) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if v["type"] == "drops" {
                said = Some(v);
            }
        }
    }
    let said = said.expect("a drops line within 5 s of resuming");
    eprintln!(
        "drops said {:.1} s after resuming: {said}",
        resumed.elapsed().as_secs_f64()
    );
    assert!(resumed.elapsed() < Duration::from_secs(3), "said late");
    assert!(said["dropped_by_kernel"].as_u64().is_some_and(|d| d > 0));
    assert_eq!(said["interface"], "eth0");
    sh(&["kill", "-INT", &pid]);
    let _ = watch.wait().expect("wait");
    let _ = reader.join();
    let rest: Vec<Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).expect("JSON line"))
        .collect();
    let summary = rest.last().expect("summary");
    assert_eq!(summary["type"], "summary");
    let reported: u64 = std::iter::once(&said)
        .chain(rest.iter())
        .filter(|v| v["type"] == "drops")
        .filter_map(|v| v["dropped_by_kernel"].as_u64())
        .sum();
    assert_eq!(
        Some(reported),
        summary["kernel"]["dropped_by_kernel"].as_u64(),
        "every drop is said before the summary"
    );
}

/// Ctrl-C stops a watch on an idle interface within 0.2 s (the poll that waits for packets
/// wakes every 200 ms at most, and a signal ends it at once), with its summary.
#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn ctrl_c_stops_an_idle_watch_at_once() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let Watch {
        child: mut watch,
        lines,
        reader,
    } = Watch::start(&lab, &["-i".as_ref(), "eth0".as_ref()]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut worst = Duration::ZERO;
    let sent = Instant::now();
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let status = watch.wait().expect("wait");
    worst = worst.max(sent.elapsed());
    assert_eq!(status.code(), Some(0));
    let _ = reader.join();
    let out = lines.try_iter().collect::<Vec<_>>().join("\n");
    assert!(out.contains("eth0: ") && out.contains(" frames"), "{out}");
    eprintln!("stopped {:.3} s after SIGINT", worst.as_secs_f64());
    assert!(
        worst < Duration::from_millis(200),
        "stopped after {worst:?}"
    );
}

/// Waits up to `limit` for the first finding line on `rx`; the finding and when it came.
fn next_finding(rx: &mpsc::Receiver<String>, limit: Duration) -> Option<(Value, Duration)> {
    let from = Instant::now();
    while from.elapsed() < limit {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if v["type"] == "finding" {
                return Some((v, from.elapsed()));
            }
        }
    }
    None
}

/// A refused connection (nothing listens on port 81) and an unanswered one (10.79.1.5 is
/// routed into a namespace that drops it) are reported live within seconds, and the file the
/// watch wrote gives the same findings.
#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn connection_failures_are_reported_live_within_seconds() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let pcap = lab.dir.join("connect.pcap");
    let Watch {
        child: mut watch,
        lines: rx,
        reader,
    } = Watch::start(
        &lab,
        &[
            "-i".as_ref(),
            "eth0".as_ref(),
            "--format".as_ref(),
            "ndjson".as_ref(),
            "-w".as_ref(),
            pcap.as_os_str(),
        ],
    );
    // Refused: conclusive at the reset; reported when the 2 s for retries to join are over.
    lab.curl(&["http://10.79.0.2:81/v2/"]);
    let (refused, after) = next_finding(&rx, Duration::from_secs(8)).expect("refused finding");
    eprintln!("refused: {:.2} s after the reset", after.as_secs_f64());
    assert_eq!(refused["rule"], "tcp-connect-refused", "{refused}");
    assert!(after < Duration::from_millis(3500), "{after:?}");
    // Unanswered: SYNs 1 s apart (a new namespace's `tcp_syn_linear_timeouts`), conclusive 1 s
    // after the third (3 s), reported 2 s later.
    let mut curl = lab.spawn_curl(&["--connect-timeout", "7", "http://10.79.1.5/v2/"]);
    let (unanswered, after) =
        next_finding(&rx, Duration::from_secs(12)).expect("unanswered finding");
    eprintln!(
        "unanswered: {:.2} s after the first SYN",
        after.as_secs_f64()
    );
    assert_eq!(unanswered["rule"], "tcp-connect-unanswered", "{unanswered}");
    assert!(after < Duration::from_millis(6500), "{after:?}");
    let _ = curl.wait();
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let _ = watch.wait().expect("wait");
    let _ = reader.join();
    let o = Command::new(env!("CARGO_BIN_EXE_capdiag"))
        .args(["analyze", "--format", "json"])
        .arg(&pcap)
        .output()
        .expect("analyze");
    let offline: Value = serde_json::from_slice(&o.stdout).expect("analyze JSON");
    let key = |v: &Value| {
        (
            v["rule"].to_string(),
            v["key_frame"].as_u64(),
            v["frames"].clone(),
        )
    };
    let offline: Vec<_> = offline["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(key)
        .collect();
    assert_eq!(offline, [key(&refused), key(&unanswered)]);
}

/// HTTPS decrypted live: `watch --tls-keylog KEYS` starts before the key log exists; curl
/// writes it (`SSLKEYLOGFILE`) while the capture runs. The 401 inside TLS names a realm that is
/// unreachable: `auth-realm-unreachable` can only be made from the decrypted HTTP. The file the
/// watch wrote, with the key log, gives the same finding; without it, none from HTTP.
#[test]
#[ignore = "needs root, iproute2, nginx, curl and openssl; run by .ci/run"]
fn https_is_decrypted_live_with_a_key_log_written_during_the_capture() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    let pcap = lab.dir.join("https.pcap");
    let keys = lab.dir.join("keys.log");
    let Watch {
        child: mut watch,
        lines: rx,
        reader,
    } = Watch::start(
        &lab,
        &[
            "-i".as_ref(),
            "eth0".as_ref(),
            "--format".as_ref(),
            "ndjson".as_ref(),
            "--tls-keylog".as_ref(),
            keys.as_os_str(),
            "-w".as_ref(),
            pcap.as_os_str(),
        ],
    );
    let o = lab
        .curl_command(&["-k", "https://10.79.0.2/v2/"])
        .env("SSLKEYLOGFILE", &keys)
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("UNAUTHORIZED"),
        "{o:?}"
    );
    assert!(keys.exists(), "curl wrote no key log");
    let mut realm = lab.spawn_curl(&[
        "--connect-timeout",
        "4",
        "http://10.79.1.5/token?service=lab-registry",
    ]);
    let (found, after) = next_finding(&rx, Duration::from_secs(10)).expect("a finding");
    eprintln!(
        "realm finding {:.2} s after the request",
        after.as_secs_f64()
    );
    assert_eq!(found["rule"], "auth-realm-unreachable", "{found}");
    let _ = realm.wait();
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let _ = watch.wait().expect("wait");
    let _ = reader.join();
    let analyze = |with_keys: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_capdiag"));
        c.args(["analyze", "--format", "json"]);
        if with_keys {
            c.arg("--tls-keylog").arg(&keys);
        }
        let o = c.arg(&pcap).output().expect("analyze");
        let v: Value = serde_json::from_slice(&o.stdout).expect("analyze JSON");
        v
    };
    let with = analyze(true);
    let rules: Vec<&str> = with["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(rules, ["auth-realm-unreachable"], "{with}");
    assert_eq!(with["findings"][0]["key_frame"], found["key_frame"]);
    assert_eq!(with["files"][0]["tls"]["decrypted"], 1);
    let without = analyze(false);
    assert!(
        without["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|f| f["rule"] != "auth-realm-unreachable"),
        "{without}"
    );
}

/// A download whose reader stops (SIGSTOP) is reset by nginx's `send_timeout` (2 s, with
/// `reset_timedout_connection`): reported live at the reset.
#[test]
#[ignore = "needs root, iproute2, nginx and curl; run by .ci/run"]
fn a_transfer_reset_is_reported_live_at_the_reset() {
    assert!(
        is_root(),
        "this test must run as root (it creates network namespaces)"
    );
    let lab = Lab::new();
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "sysctl",
        "-qw",
        "net.ipv4.tcp_rmem=4096 16384 16384",
    ]);
    let Watch {
        child: mut watch,
        lines: rx,
        reader,
    } = Watch::start(
        &lab,
        &[
            "-i".as_ref(),
            "eth0".as_ref(),
            "--format".as_ref(),
            "ndjson".as_ref(),
        ],
    );
    let mut curl = lab.spawn_curl(&[
        "-o",
        "/dev/null",
        "--limit-rate",
        "100k",
        "http://10.79.0.2/v2/lab/small/blobs/sha256:big",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    sh(&["kill", "-STOP", &curl.id().to_string()]);
    let stopped = Instant::now();
    let (f, after) = next_finding(&rx, Duration::from_secs(10)).expect("transfer-reset finding");
    eprintln!(
        "transfer-reset: {:.2} s after the reader stopped",
        after.as_secs_f64()
    );
    assert_eq!(f["rule"], "transfer-reset", "{f}");
    assert!(
        f["detail"]
            .as_str()
            .is_some_and(|d| d.contains("zero window")),
        "{f}"
    );
    // nginx resets 2 s after its writes stall; the finding follows the reset at once.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    sh(&["kill", "-CONT", &curl.id().to_string()]);
    let _ = curl.wait();
    sh(&["kill", "-INT", &watch.id().to_string()]);
    let _ = watch.wait().expect("wait");
    let _ = reader.join();
}
